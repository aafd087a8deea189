FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY storage storage
COPY intake intake
COPY routing routing
COPY channels channels
COPY bots bots
COPY inbox inbox
COPY hub hub
RUN pip install --no-cache-dir .
ENV OMNIHUB_HOST=0.0.0.0 OMNIHUB_DATA_DIR=/data
VOLUME /data
EXPOSE 8000
CMD ["omnihub", "serve"]
