"""Windows drivers given in a folder: their INF files read (`inf`), the PE version of their files (`pever`)."""
