"""Growing a list: the hosted signup form, double opt-in, consent records, abuse limits.

settings   [signup] and [lists.<name>] in campaign.toml
texts      the form's and the confirmation's words, per language
tables     pending signups, consent records, rate-limit counters
flow       what a signup and a confirmation do (called by the web pages and tests)
guard      honeypot, fill time, rate limits, CAPTCHA verification
snippet    the HTML form `campaign form LIST` prints for another website
"""
