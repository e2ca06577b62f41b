"""One way to write a time across the console: ISO order, to the second, with the zone (the
admin's default, "Dec. 2, 2026, 3:04 p.m.", cannot tell two answers of the same minute apart
and does not say which zone it is in). Django reads this module through FORMAT_MODULE_PATH."""

DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
