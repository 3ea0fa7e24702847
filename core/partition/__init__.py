"""Partition tables: MBR with its EBR chain and GPT, declared (`c_mbr`, `c_gpt`), parsed, rewritten and built."""
