"""Registry hive (regf) reader and writer, written from the format facts in BOOT.md §9.

`hive.Hive` reads (and validates) a hive held in memory; `writer.HiveWriter` edits it in place
(values, keys, cell allocation, new hbins) and saves it atomically with a backup of the original;
`new.new_hive` makes an empty clean hive for it to fill.
"""
