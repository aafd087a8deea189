"""Everything the client bot and the managers' bot say, in Russian and English."""

from __future__ import annotations

from datetime import datetime

TEXTS: dict[str, dict[str, str]] = {
    "ru": {
        "welcome": "Здравствуйте, {name}! Чем можем помочь?",
        "welcome_anonymous": "Здравствуйте! Чем можем помочь?",
        "btn_ask": "✍️ Задать вопрос",
        "btn_claim": "📝 Подать претензию",
        "btn_my_claims": "📋 Мои претензии",
        "btn_language": "🌐 English",
        "ask_prompt": (
            "Напишите ваш вопрос одним или несколькими сообщениями — менеджер ответит здесь."
        ),
        "language_set": "Язык: русский.",
        "cancelled": "Отменено.",
        "nothing_to_cancel": "Отменять нечего.",
        "stale_button": "Эта кнопка уже не действует.",
        "claim_reason": "Шаг 1 из 5. Выберите причину претензии:",
        "claim_reason_invalid": "Пожалуйста, выберите причину кнопкой ниже.",
        "claim_order": "Шаг 2 из 5. Укажите номер заказа или договора или нажмите «Пропустить».",
        "claim_order_invalid": (
            "Номер заказа — до 100 символов: буквы, цифры и знаки - / # . "
            "Напишите его ещё раз или нажмите «Пропустить»."
        ),
        "claim_description": "Шаг 3 из 5. Опишите, что случилось (не меньше 10 символов).",
        "claim_description_invalid": "Опишите проблему подробнее: от 10 до 4000 символов.",
        "claim_files": (
            "Шаг 4 из 5. Пришлите фото или документы (до {max} файлов), затем нажмите «Готово». "
            "Если файлов нет, сразу нажмите «Готово»."
        ),
        "claim_file_added": "Файл получен ({count} из {max}). Пришлите ещё или нажмите «Готово».",
        "claim_files_invalid": "Пришлите фото или документ или нажмите «Готово».",
        "claim_file_too_large": (
            "Файл больше {size} МБ, бот не может его принять. Пришлите файл поменьше."
        ),
        "claim_file_failed": "Не удалось получить файл. Пришлите его ещё раз.",
        "claim_files_full": "Уже {max} файлов, больше не поместится. Нажмите «Готово».",
        "claim_phone": (
            "Шаг 5 из 5. Поделитесь номером телефона кнопкой ниже "
            "или напишите его, например +7 912 345-67-89."
        ),
        "claim_phone_invalid": (
            "Не получилось распознать номер. Напишите его, например +7 912 345-67-89, "
            "или нажмите кнопку ниже."
        ),
        "claim_phone_not_own": "Поделитесь, пожалуйста, своим номером — кнопкой ниже.",
        "claim_phone_saved": "Телефон {phone} сохранён.",
        "claim_review": (
            "Проверьте претензию:\n\n"
            "Причина: {reason}\n"
            "Заказ или договор: {order}\n"
            "Описание: {description}\n"
            "Файлы: {files}\n"
            "Телефон: {phone}\n\n"
            "Всё верно?"
        ),
        "claim_review_buttons": "Нажмите «Отправить», «Изменить» или «Отменить».",
        "claim_edit_which": "Что изменить?",
        "claim_filed": (
            "Претензия зарегистрирована под номером {number}. "
            "Мы рассмотрим её до {due} и сообщим о решении здесь."
        ),
        "claim_filed_no_due": (
            "Претензия зарегистрирована под номером {number}. Мы сообщим о решении здесь."
        ),
        "claim_failed": "Не удалось зарегистрировать претензию: {reason}. Попробуйте ещё раз.",
        "not_given": "не указан",
        "no_files": "нет",
        "btn_skip": "Пропустить",
        "btn_done": "Готово",
        "btn_share_phone": "📱 Поделиться номером",
        "btn_confirm": "✅ Отправить",
        "btn_edit": "✏️ Изменить",
        "btn_cancel": "✖️ Отменить",
        "btn_back": "↩️ Назад",
        "field_reason": "Причину",
        "field_order": "Номер заказа",
        "field_description": "Описание",
        "field_files": "Файлы",
        "field_phone": "Телефон",
        "my_claims_empty": "У вас пока нет претензий.",
        "my_claims_title": "Ваши претензии (нажмите, чтобы увидеть историю):",
        "my_claims_line": "{number} — {status}, от {date}",
        "claim_history": "Претензия {number}\nПричина: {reason}\nСтатус: {status}\n\nИстория:",
        "claim_history_resolution": "Решение: {resolution}",
        "claim_history_rating": "Ваша оценка: {rating} из 5",
        "rating_thanks": (
            "Спасибо за оценку {rating}! Хотите добавить комментарий? "
            "Напишите его следующим сообщением или нажмите «Пропустить»."
        ),
        "rating_saved": "Спасибо! Ваш отзыв сохранён.",
        "rating_not_possible": "Эту претензию сейчас нельзя оценить.",
        "rating_already": "Вы уже оценили эту претензию: {rating} из 5.",
        "btn_menu": "🏠 Меню",
        "btn_my_claims_back": "↩️ К моим претензиям",
        "help": (
            "Этот бот — связь с нашими менеджерами.\n\n"
            "✍️ Задать вопрос — просто напишите сообщение, менеджер ответит здесь.\n"
            "📝 Подать претензию — бот спросит причину, номер заказа, описание, "
            "фото или документы и телефон.\n"
            "📋 Мои претензии — статус и история ваших претензий.\n\n"
            "Команды: /start — меню, /claims — мои претензии, "
            "/cancel — прервать заполнение, /help — эта справка."
        ),
        # The managers' bot
        "manager_welcome": (
            "Этот бот присылает менеджерам уведомления omnihub: новые разговоры, "
            "переадресации, просроченные ответы. Чтобы подключить его, получите код "
            "в omnihub и отправьте сюда: /link КОД"
        ),
        "manager_linked": (
            "Готово, {name}! Уведомления omnihub теперь приходят сюда. Отключить: /unlink"
        ),
        "manager_already_linked": (
            "Уведомления omnihub для {name} приходят сюда. Отключить: /unlink"
        ),
        "manager_code_wrong": (
            "Код не подошёл: он неверный или уже использован. "
            "Получите новый код в omnihub и отправьте: /link КОД"
        ),
        "manager_code_expired": (
            "Срок действия кода истёк. Получите новый код в omnihub и отправьте: /link КОД"
        ),
        "manager_code_missing": "Отправьте код из omnihub так: /link КОД",
        "manager_unlinked": (
            "Уведомления omnihub сюда больше не приходят. Подключить снова: /link КОД"
        ),
        "manager_not_linked": "Этот чат не подключён к менеджеру omnihub.",
    },
    "en": {
        "welcome": "Hello, {name}! How can we help?",
        "welcome_anonymous": "Hello! How can we help?",
        "btn_ask": "✍️ Ask a question",
        "btn_claim": "📝 File a claim",
        "btn_my_claims": "📋 My claims",
        "btn_language": "🌐 Русский",
        "ask_prompt": "Write your question in one or more messages; a manager will answer here.",
        "language_set": "Language: English.",
        "cancelled": "Cancelled.",
        "nothing_to_cancel": "There is nothing to cancel.",
        "stale_button": "This button is no longer active.",
        "claim_reason": "Step 1 of 5. Choose the reason for your claim:",
        "claim_reason_invalid": "Please choose a reason with a button below.",
        "claim_order": "Step 2 of 5. Enter the order or contract number, or press Skip.",
        "claim_order_invalid": (
            "An order number has up to 100 characters: letters, digits and - / # . "
            "Please enter it again or press Skip."
        ),
        "claim_description": "Step 3 of 5. Describe what happened (10 characters at least).",
        "claim_description_invalid": "Please describe the problem in 10 to 4000 characters.",
        "claim_files": (
            "Step 4 of 5. Send photos or documents (up to {max} files), then press Done. "
            "If you have none, press Done now."
        ),
        "claim_file_added": "File received ({count} of {max}). Send more or press Done.",
        "claim_files_invalid": "Please send a photo or a document, or press Done.",
        "claim_file_too_large": (
            "The file is over {size} MB; the bot cannot take it. Please send a smaller one."
        ),
        "claim_file_failed": "The file could not be received. Please send it again.",
        "claim_files_full": "That makes {max} files, the most a claim takes. Press Done.",
        "claim_phone": (
            "Step 5 of 5. Share your phone number with the button below "
            "or type it, e.g. +7 912 345-67-89."
        ),
        "claim_phone_invalid": (
            "That is not a phone number we can read. Type it like +7 912 345-67-89 "
            "or press the button below."
        ),
        "claim_phone_not_own": "Please share your own number with the button below.",
        "claim_phone_saved": "Phone {phone} saved.",
        "claim_review": (
            "Please check your claim:\n\n"
            "Reason: {reason}\n"
            "Order or contract: {order}\n"
            "Description: {description}\n"
            "Files: {files}\n"
            "Phone: {phone}\n\n"
            "Is everything right?"
        ),
        "claim_review_buttons": "Press Send, Edit or Cancel.",
        "claim_edit_which": "What would you like to change?",
        "claim_filed": (
            "Your claim is registered as {number}. We will review it by {due} "
            "and tell you the decision here."
        ),
        "claim_filed_no_due": (
            "Your claim is registered as {number}. We will tell you the decision here."
        ),
        "claim_failed": "The claim could not be registered: {reason}. Please try again.",
        "not_given": "not given",
        "no_files": "none",
        "btn_skip": "Skip",
        "btn_done": "Done",
        "btn_share_phone": "📱 Share my number",
        "btn_confirm": "✅ Send",
        "btn_edit": "✏️ Edit",
        "btn_cancel": "✖️ Cancel",
        "btn_back": "↩️ Back",
        "field_reason": "Reason",
        "field_order": "Order number",
        "field_description": "Description",
        "field_files": "Files",
        "field_phone": "Phone",
        "my_claims_empty": "You have no claims yet.",
        "my_claims_title": "Your claims (press one to see its history):",
        "my_claims_line": "{number} — {status}, filed {date}",
        "claim_history": "Claim {number}\nReason: {reason}\nStatus: {status}\n\nHistory:",
        "claim_history_resolution": "Resolution: {resolution}",
        "claim_history_rating": "Your rating: {rating} of 5",
        "rating_thanks": (
            "Thank you for rating it {rating}! Would you like to add a comment? "
            "Write it in your next message or press Skip."
        ),
        "rating_saved": "Thank you! Your feedback is saved.",
        "rating_not_possible": "This claim cannot be rated now.",
        "rating_already": "You have rated this claim already: {rating} of 5.",
        "btn_menu": "🏠 Menu",
        "btn_my_claims_back": "↩️ Back to my claims",
        "help": (
            "This bot connects you with our managers.\n\n"
            "✍️ Ask a question: just write a message; a manager will answer here.\n"
            "📝 File a claim: the bot asks for the reason, the order number, a description, "
            "photos or documents and your phone.\n"
            "📋 My claims: the status and history of your claims.\n\n"
            "Commands: /start for the menu, /claims for your claims, "
            "/cancel to stop filling in a form, /help for this help."
        ),
        # The managers' bot
        "manager_welcome": (
            "This bot sends managers omnihub's notifications: new conversations, "
            "forwards, overdue replies. To connect it, get a code in omnihub "
            "and send it here: /link CODE"
        ),
        "manager_linked": (
            "Done, {name}! omnihub's notifications now come here. To stop them: /unlink"
        ),
        "manager_already_linked": "omnihub's notifications for {name} come here. To stop: /unlink",
        "manager_code_wrong": (
            "That code did not work: it is wrong or was used already. "
            "Get a new code in omnihub and send: /link CODE"
        ),
        "manager_code_expired": (
            "That code has expired. Get a new code in omnihub and send: /link CODE"
        ),
        "manager_code_missing": "Send the code from omnihub like this: /link CODE",
        "manager_unlinked": (
            "omnihub's notifications no longer come here. To connect again: /link CODE"
        ),
        "manager_not_linked": "This chat is not linked to an omnihub manager.",
    },
}


def t(lang: str, code: str, **values: object) -> str:
    template = TEXTS.get(lang, TEXTS["ru"]).get(code) or TEXTS["en"][code]
    return template.format(**values) if values else template


def date_text(lang: str, value: object) -> str:
    """A date as clients of each language write it."""
    if not isinstance(value, datetime):
        return str(value)
    return value.strftime("%d.%m.%Y") if lang == "ru" else value.strftime("%Y-%m-%d")
