#!/usr/bin/python3
"""embed_list: a line list (one entry a line, '#' comment lines and blank lines skipped,
as deception_list_load() reads it) into a C array, so that the daemon's built-in
default is the shipped file itself, with or without an installation.

    embed_list.py INPUT OUTPUT NAME COUNT  ->  const char *const NAME[]; const size_t COUNT
"""
import sys


def c_string(s):
    out = []
    for ch in s.encode("utf-8"):
        if ch in (0x22, 0x5c):
            out.append("\\" + chr(ch))
        elif 0x20 <= ch < 0x7f:
            out.append(chr(ch))
        else:
            out.append("\\%03o" % ch)
    return '"' + "".join(out) + '"'


def main():
    src, dst, name, count = sys.argv[1:5]
    entries = []
    with open(src, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if not line or line.startswith("#"):
                continue
            entries.append(line)
    with open(dst, "w", encoding="utf-8") as f:
        f.write("/* Generated from %s by embed_list.py: do not edit. */\n"
                % src.rsplit("/", 1)[-1])
        f.write("#include <stddef.h>\n\n#include \"deceive/deception.h\"\n\n")
        f.write("const char *const %s[] = {\n" % name)
        for e in entries:
            f.write("\t%s,\n" % c_string(e))
        f.write("};\n")
        f.write("const size_t %s = %d;\n" % (count, len(entries)))


if __name__ == "__main__":
    main()
