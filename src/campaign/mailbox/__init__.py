"""`campaign mailbox`: bounces, complaints and unsubscribes that arrive by mail.

`settings` is the `[mailbox]` section; `reports` reads one message into events;
`access` talks IMAP or POP3; `reader` runs the whole pass and records each event
through the webhooks' exactly-once path (campaign.web.webhooks.recording).
"""
