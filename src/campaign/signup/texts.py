"""The words of the signup form, its answers and the confirmation email, per language.

campaign.toml's `language` picks one; an organisation's own consent sentence
(`[lists.<name>] consent`) replaces the default one.
"""

from __future__ import annotations

from typing import Final

TEXTS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "title": "Subscribe to {list}",
        "email": "Email address",
        "name": "Name (optional)",
        "topics": "What would you like to hear about?",
        "consent": "I agree to receive emails from {org} on this list. I can unsubscribe at any time with the link in every email.",
        "button": "Subscribe",
        "honeypot": "Leave this field empty",
        "invalid_email": "Please enter a valid email address.",
        "check_title": "Check your inbox",
        "check_text": "If this address can join, an email is on its way to it. Open the link in it to confirm your subscription.",
        "slow_title": "Please wait a while",
        "slow_text": "There have been too many signups from your network in the last hour. Please try again later.",
        "confirm_title": "Confirm your subscription",
        "confirm_text": "Press the button to confirm that {email} wants emails from {org}.",
        "confirm_button": "Confirm my subscription",
        "confirmed_title": "Subscription confirmed",
        "confirmed_text": "Thank you: {email} now gets emails from {org}.",
        "bad_link_title": "This link does not work",
        "bad_link_text": "The link may be incomplete, too old or already used. Please sign up again.",
        "mail_subject": "Please confirm your subscription to {org}",
        "mail_text": "Someone, hopefully you, asked to receive emails from {org} at this address.\n\nTo confirm, open this link and press the button (it works for {days} days):\n\n{url}\n\nIf it was not you, ignore this email: you will not hear from us again.",
        "captcha": "Please complete the check that you are human.",
    },
    "es": {
        "title": "Suscríbase a {list}",
        "email": "Correo electrónico",
        "name": "Nombre (opcional)",
        "topics": "¿Sobre qué temas desea recibir noticias?",
        "consent": "Acepto recibir correos de {org} en esta lista. Puedo darme de baja en cualquier momento con el enlace de cada correo.",
        "button": "Suscribirme",
        "honeypot": "Deje este campo vacío",
        "invalid_email": "Escriba una dirección de correo válida.",
        "check_title": "Revise su bandeja de entrada",
        "check_text": "Si esta dirección puede suscribirse, le enviamos un correo. Abra su enlace para confirmar la suscripción.",
        "slow_title": "Espere un momento",
        "slow_text": "Ha habido demasiadas suscripciones desde su red en la última hora. Inténtelo más tarde.",
        "confirm_title": "Confirme su suscripción",
        "confirm_text": "Pulse el botón para confirmar que {email} desea recibir correos de {org}.",
        "confirm_button": "Confirmar mi suscripción",
        "confirmed_title": "Suscripción confirmada",
        "confirmed_text": "Gracias: {email} recibirá los correos de {org}.",
        "bad_link_title": "Este enlace no funciona",
        "bad_link_text": "El enlace puede estar incompleto, ser antiguo o haberse usado ya. Vuelva a suscribirse.",
        "mail_subject": "Confirme su suscripción a {org}",
        "mail_text": "Alguien, esperamos que usted, pidió recibir correos de {org} en esta dirección.\n\nPara confirmarlo, abra este enlace y pulse el botón (válido {days} días):\n\n{url}\n\nSi no fue usted, ignore este correo: no volverá a saber de nosotros.",
        "captcha": "Complete la comprobación de que es una persona.",
    },
    "fr": {
        "title": "Abonnez-vous à {list}",
        "email": "Adresse e-mail",
        "name": "Nom (facultatif)",
        "topics": "Quels sujets vous intéressent ?",
        "consent": "J’accepte de recevoir des e-mails de {org} sur cette liste. Je peux me désabonner à tout moment avec le lien de chaque e-mail.",
        "button": "M’abonner",
        "honeypot": "Laissez ce champ vide",
        "invalid_email": "Saisissez une adresse e-mail valide.",
        "check_title": "Consultez votre boîte de réception",
        "check_text": "Si cette adresse peut s’abonner, un e-mail lui a été envoyé. Ouvrez son lien pour confirmer votre abonnement.",
        "slow_title": "Veuillez patienter",
        "slow_text": "Trop d’inscriptions sont venues de votre réseau cette dernière heure. Réessayez plus tard.",
        "confirm_title": "Confirmez votre abonnement",
        "confirm_text": "Appuyez sur le bouton pour confirmer que {email} souhaite recevoir les e-mails de {org}.",
        "confirm_button": "Confirmer mon abonnement",
        "confirmed_title": "Abonnement confirmé",
        "confirmed_text": "Merci : {email} recevra les e-mails de {org}.",
        "bad_link_title": "Ce lien ne fonctionne pas",
        "bad_link_text": "Le lien est peut-être incomplet, trop ancien ou déjà utilisé. Abonnez-vous à nouveau.",
        "mail_subject": "Confirmez votre abonnement à {org}",
        "mail_text": "Quelqu’un, vous sans doute, a demandé à recevoir les e-mails de {org} à cette adresse.\n\nPour confirmer, ouvrez ce lien et appuyez sur le bouton (valable {days} jours) :\n\n{url}\n\nSi ce n’était pas vous, ignorez cet e-mail : vous n’aurez plus de nouvelles de nous.",
        "captcha": "Veuillez confirmer que vous êtes une personne.",
    },
    "de": {
        "title": "{list} abonnieren",
        "email": "E-Mail-Adresse",
        "name": "Name (freiwillig)",
        "topics": "Worüber möchten Sie hören?",
        "consent": "Ich möchte E-Mails von {org} über diese Liste erhalten. Ich kann mich jederzeit über den Link in jeder E-Mail abmelden.",
        "button": "Abonnieren",
        "honeypot": "Dieses Feld bitte leer lassen",
        "invalid_email": "Bitte geben Sie eine gültige E-Mail-Adresse ein.",
        "check_title": "Sehen Sie in Ihr Postfach",
        "check_text": "Wenn diese Adresse sich anmelden kann, ist eine E-Mail an sie unterwegs. Öffnen Sie den Link darin, um Ihr Abonnement zu bestätigen.",
        "slow_title": "Bitte warten Sie etwas",
        "slow_text": "Aus Ihrem Netz kamen in der letzten Stunde zu viele Anmeldungen. Bitte versuchen Sie es später.",
        "confirm_title": "Abonnement bestätigen",
        "confirm_text": "Drücken Sie den Knopf, um zu bestätigen, dass {email} E-Mails von {org} erhalten möchte.",
        "confirm_button": "Abonnement bestätigen",
        "confirmed_title": "Abonnement bestätigt",
        "confirmed_text": "Danke: {email} erhält nun E-Mails von {org}.",
        "bad_link_title": "Dieser Link funktioniert nicht",
        "bad_link_text": "Der Link ist vielleicht unvollständig, zu alt oder schon benutzt. Bitte melden Sie sich erneut an.",
        "mail_subject": "Bitte bestätigen Sie Ihr Abonnement bei {org}",
        "mail_text": "Jemand, hoffentlich Sie, möchte an diese Adresse E-Mails von {org} erhalten.\n\nZum Bestätigen öffnen Sie diesen Link und drücken den Knopf ({days} Tage gültig):\n\n{url}\n\nWaren Sie es nicht, ignorieren Sie diese E-Mail: Sie hören nicht wieder von uns.",
        "captcha": "Bitte bestätigen Sie, dass Sie ein Mensch sind.",
    },
}
LANGUAGES: Final = tuple(TEXTS)


def texts(language: str) -> dict[str, str]:
    """The words for `language` (checked when campaign.toml is read)."""
    return TEXTS[language]
