"""PE (Portable Executable) structures needed to read a driver file's version resource (BOOT.md §10.3;
its §12 names the public specification: Microsoft "PE Format" and "VS_FIXEDFILEINFO")."""

from __future__ import annotations

from ..structs import Struct

PE_SIGNATURE = b"PE\x00\x00"
PE32, PE32_PLUS = 0x10B, 0x20B
RESOURCE_DIRECTORY_INDEX = 2  # IMAGE_DIRECTORY_ENTRY_RESOURCE
RT_VERSION = 16
FIXED_SIGNATURE = 0xFEEF04BD
SUBDIRECTORY = 0x80000000  # high bit of a resource entry's offset: it points to another directory
# Where the data directories start in the optional header (PE32 / PE32+).
DATA_DIRECTORIES_AT = {PE32: 96, PE32_PLUS: 112}

DOS_HEADER = Struct("DOS header", [("magic", "2s"), ("unused", "58s"), ("e_lfanew", "I")])
COFF_HEADER = Struct("COFF header", [
    ("signature", "4s"), ("machine", "H"), ("sections", "H"), ("timestamp", "I"), ("symbols", "I"),
    ("symbol_count", "I"), ("optional_size", "H"), ("characteristics", "H")])
DATA_DIRECTORY = Struct("data directory", [("rva", "I"), ("size", "I")])
SECTION = Struct("section header", [
    ("name", "8s"), ("virtual_size", "I"), ("rva", "I"), ("raw_size", "I"), ("raw_offset", "I"),
    ("unused", "16s")])
RESOURCE_DIRECTORY = Struct("resource directory", [
    ("characteristics", "I"), ("timestamp", "I"), ("major", "H"), ("minor", "H"), ("named", "H"),
    ("ids", "H")])
RESOURCE_ENTRY = Struct("resource entry", [("name", "I"), ("offset", "I")])
RESOURCE_DATA = Struct("resource data entry", [("rva", "I"), ("size", "I"), ("codepage", "I"), ("reserved", "I")])
VERSION_HEADER = Struct("VS_VERSIONINFO header", [("length", "H"), ("value_length", "H"), ("type", "H")])
FIXED_FILE_INFO = Struct("VS_FIXEDFILEINFO", [
    ("signature", "I"), ("struct_version", "I"), ("file_ms", "I"), ("file_ls", "I"), ("product_ms", "I"),
    ("product_ls", "I"), ("flags_mask", "I"), ("flags", "I"), ("os", "I"), ("type", "I"), ("subtype", "I"),
    ("date_ms", "I"), ("date_ls", "I")])
VERSION_KEY = "VS_VERSION_INFO\x00".encode("utf-16-le")
