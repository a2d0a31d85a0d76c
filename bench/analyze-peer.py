#!/usr/bin/python3
"""analyze-peer.py: the Python-honeypot way of analysing mail, as the throughput peer.

Parses each message with the standard library's `email` package (policy.default),
walks every part, decodes transfer encodings and charsets, and extracts URLs with a
regular expression over text and HTML (no HTML parser, no normalisation): the approach
of the Python mail honeypots.  Prints one JSON line per message (links, recipients,
attachments with SHA-256) so that its output can be compared with mxbait's.

usage: analyze-peer.py [--quiet] PATH...   (files or directories, recursively)
"""
import email
import email.policy
import hashlib
import json
import os
import re
import sys

URL_RE = re.compile(r'(?:(?:https?|ftp)://|www\.)[^\s<>"\'()]+', re.I)


def files(paths):
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, names in os.walk(p):
                dirs.sort()
                for n in sorted(names):
                    yield os.path.join(root, n)
        else:
            yield p


def analyse(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    links, atts = [], []
    for part in msg.walk():
        if part.is_multipart():
            continue
        try:
            payload = part.get_payload(decode=True) or b''
        except Exception:
            payload = b''
        if part.get_content_maintype() == 'text' and not part.get_filename():
            cs = part.get_content_charset() or 'utf-8'
            try:
                text = payload.decode(cs, 'replace')
            except LookupError:
                text = payload.decode('utf-8', 'replace')
            for u in URL_RE.findall(text):
                u = u.rstrip('.,;:!?')
                if u.lower().startswith('www.'):
                    u = 'http://' + u
                links.append(u)
        else:
            atts.append({'filename': part.get_filename(), 'type': part.get_content_type(),
                         'size': len(payload), 'sha256': hashlib.sha256(payload).hexdigest()})
    rcpts = []
    for h in ('to', 'cc', 'bcc'):
        try:
            for a in msg.get_all(h, []) or []:
                for ad in getattr(a, 'addresses', []):
                    if ad.addr_spec and '@' in ad.addr_spec:
                        rcpts.append(ad.addr_spec.lower())
        except Exception:
            pass
    return {'subject': str(msg.get('subject', '')), 'links': sorted(set(links)),
            'recipients': sorted(set(rcpts)), 'attachments': atts}


def main():
    quiet = '--quiet' in sys.argv
    paths = [a for a in sys.argv[1:] if a != '--quiet']
    out = sys.stdout
    for f in files(paths):
        with open(f, 'rb') as fh:
            raw = fh.read()
        try:
            r = analyse(raw)
        except Exception as e:  # the peer must not stop on one bad message
            r = {'error': str(e)}
        r['source'] = f
        if not quiet:
            out.write(json.dumps(r) + '\n')


if __name__ == '__main__':
    main()
