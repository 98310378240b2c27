# Only what differs from django.conf.locale.en.formats (Django reads the rest from there):
# "e" appends the zone's abbreviation (JST, EST, UTC) to every date and time.
DATETIME_FORMAT = "N j, Y, P e"
SHORT_DATETIME_FORMAT = "m/d/Y P e"
