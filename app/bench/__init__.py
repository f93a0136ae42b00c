"""Load generation for `smsagg bench`."""
