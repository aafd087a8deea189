"""Routing administration: queues and members (`queues`), rules (`rules`), managers'
routing profiles, absences and presence (`profiles`), and people acting on a
conversation (`conversations`: assign, transfer, take).

Services validate, change rows and flush; they never commit. The inputs are
pydantic models so that the API and the CLI validate alike; a check that needs
the database (an unknown queue or manager) raises `InvalidInput` (422).
"""
