#!/usr/bin/python3
"""make-fixtures.py: writes the attachment fixtures of tests/analyze/attachments (and
the seed corpora of the attachment fuzzers) from scratch; every host is under
example.com/.org/.net.  Written for mxbait (ISC).  The outputs are committed; run this
again only to change them:  tests/analyze/attachments/make-fixtures.py
"""
import base64
import gzip
import hashlib
import io
import os
import struct
import tarfile
import zipfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
FUZZ = os.path.join(HERE, '..', '..', 'fuzz', 'corpus')
FIXED_TIME = (2024, 1, 2, 3, 4, 6)


def zip_bytes(members, encrypt=()):
    b = io.BytesIO()
    with zipfile.ZipFile(b, 'w', zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            zi = zipfile.ZipInfo(name, FIXED_TIME)
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, data)
    raw = bytearray(b.getvalue())
    # mark members as encrypted (general purpose bit 0) in local and central headers
    for name in encrypt:
        nb = name.encode()
        for sig, flag_off, name_off in ((b'PK\x03\x04', 6, 30), (b'PK\x01\x02', 8, 46)):
            i = 0
            while True:
                i = raw.find(sig, i)
                if i < 0:
                    break
                nl = struct.unpack_from('<H', raw, i + (26 if sig == b'PK\x03\x04' else 28))[0]
                if raw[i + name_off:i + name_off + nl] == nb:
                    raw[i + flag_off] |= 1
                i += 4
    return bytes(raw)


def mail(subject, parts):
    out = ['From: a@example.org', 'To: b@example.org', 'Subject: ' + subject,
           'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="ATT"', '',
           '--ATT', 'Content-Type: text/plain', '', 'see the attachment']
    for ctype, name, data in parts:
        out += ['--ATT', 'Content-Type: %s; name="%s"' % (ctype, name),
                'Content-Disposition: attachment; filename="%s"' % name,
                'Content-Transfer-Encoding: base64', '']
        b64 = base64.encodebytes(data).decode().rstrip('\n')
        out += b64.split('\n')
    out += ['--ATT--', '']
    return '\r\n'.join(out).encode()


# ---- TNEF ----
def tnef_attr(level, attr_id, data):
    return struct.pack('<BII', level, attr_id, len(data)) + data + struct.pack('<H', sum(data) & 0xFFFF)


def mapi_props(props):
    out = struct.pack('<I', len(props))
    for ptype, pid, value in props:
        out += struct.pack('<HH', ptype, pid)
        if ptype in (0x001E, 0x001F, 0x0102):
            out += struct.pack('<II', 1, len(value)) + value + b'\0' * (-len(value) % 4)
        elif ptype == 0x0003:
            out += struct.pack('<I', value)
    return out


def lzfu_literals(data):
    """Compressed RTF with literal runs only, then the end marker (a reference to the
    write position): valid LZFu that any reader must decode."""
    body = bytearray()
    pos = 207
    i = 0
    while True:
        chunk = data[i:i + 8]
        i += 8
        if len(chunk) < 8:
            flags = 1 << len(chunk)  # the end marker after the literals
            body.append(flags)
            body += chunk
            wp = (pos + len(chunk)) & 4095
            body += struct.pack('>H', wp << 4)
            break
        body.append(0)
        body += chunk
        pos = (pos + 8) & 4095
    return struct.pack('<IIII', len(body) + 12, len(data), 0x75465A4C, 0) + bytes(body)


def tnef_stream():
    html_att = b'<html><body><a href="http://tnef-html.example.com/pay">pay</a></body></html>'
    txt_att = b'notes: see http://tnef-text.example.org/x for details\r\n'
    rtf = (b'{\\rtf1\\ansi{\\field{\\*\\fldinst HYPERLINK "http://tnef-rtf.example.com/r"}'
           b'{\\fldrslt click}}\\par}')
    s = struct.pack('<IH', 0x223E9F78, 0x0001)
    s += tnef_attr(1, 0x00069003, mapi_props([
        (0x0102, 0x1013, b'<p>body <a href="http://tnef-body.example.net/">x</a></p>'),
        (0x0102, 0x1009, lzfu_literals(rtf)),
    ]))
    for title, data, long_name in ((b'INVOIC~1.HTM\0', html_att, 'invoice.html'),
                                   (b'notes.txt\0', txt_att, None)):
        s += tnef_attr(2, 0x00069002, b'\1\0' + b'\0' * 12)
        s += tnef_attr(2, 0x00018010, title)
        s += tnef_attr(2, 0x0006800F, data)
        props = [(0x0003, 0x0E20, len(data))]
        if long_name:
            props.append((0x001F, 0x3707, (long_name + '\0').encode('utf-16-le')))
        s += tnef_attr(2, 0x00069005, mapi_props(props))
    return s


# ---- PDF with an object stream ----
def pdf_objstm():
    annot = b'<< /Type /Annot /Subtype /Link /Rect [0 0 100 20] /A << /S /URI /URI (http://pdf-objstm.example.com/p) >> >>'
    header = b'5 0 '
    objstm = zlib.compress(header + annot)
    content = zlib.compress(b'BT /F1 12 Tf 72 712 Td (Hello) Tj ET')
    objs = [
        b'1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n',
        b'2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n',
        b'3 0 obj << /Type /Page /Parent 2 0 R /Annots [5 0 R] /Contents 4 0 R >> endobj\n',
        b'4 0 obj << /Length %d /Filter /FlateDecode >>\nstream\r\n' % len(content) + content + b'\r\nendstream endobj\n',
        b'6 0 obj << /Type /ObjStm /N 1 /First %d /Length %d /Filter /FlateDecode >>\nstream\n' % (len(header), len(objstm)) + objstm + b'\nendstream endobj\n',
    ]
    return b'%PDF-1.5\n' + b''.join(objs) + b'trailer << /Root 1 0 R >>\n%%EOF\n'


# ---- OOXML ----
def docx():
    ct = b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/></Types>'
    rels = (b'<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>'
            b'<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/hyperlink" Target="https://docx-rel.example.com/r?a=1&amp;b=2" TargetMode="External"/>'
            b'<Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/attachedTemplate" Target="http://docx-template.example.net/t.dotm" TargetMode="External"/>'
            b'</Relationships>')
    doc = (b'<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
           b'<w:p><w:r><w:t>Visit https://docx-text.example.org/t today</w:t></w:r></w:p>'
           b'<w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText xml:space="preserve"> HYPERLINK "https://docx-field.example.net/f" </w:instrText></w:r></w:p>'
           b'</w:body></w:document>')
    return zip_bytes([('[Content_Types].xml', ct), ('_rels/.rels', b'<Relationships/>'),
                      ('word/document.xml', doc), ('word/_rels/document.xml.rels', rels),
                      ('word/styles.xml', b'<w:styles xmlns:w="http://schemas.openxmlformats.org/x"/>')])


def archives():
    inner = zip_bytes([('c.txt', b'inner http://zip-inner.example.net/c\n')])
    z = zip_bytes([('a.txt', b'see http://zip-member.example.com/z\n'),
                   ('b.html', b'<a href="http://zip-html.example.org/h">h</a>'),
                   ('inner.zip', inner),
                   ('secret.doc', b'not really encrypted, flagged so')], encrypt=('secret.doc',))
    tb = io.BytesIO()
    with tarfile.open(fileobj=tb, mode='w', format=tarfile.USTAR_FORMAT) as t:
        for name, data in (('dir/readme.txt', b'tar member http://tar-member.example.com/t\n'),):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = 1700000000
            t.addfile(ti, io.BytesIO(data))
    tgz = gzip.compress(tb.getvalue(), mtime=0)
    gz = gzip.compress(b'single gzip file http://gz-single.example.org/g\n', mtime=0)
    return z, inner, tgz, gz


def bomb():
    b = io.BytesIO()
    with zipfile.ZipFile(b, 'w', zipfile.ZIP_DEFLATED) as z:
        zi = zipfile.ZipInfo('zeros.bin', FIXED_TIME)
        zi.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(zi, b'\0' * (100 << 20))
    return b.getvalue()


def sha(b):
    return hashlib.sha256(b).hexdigest()


def write(name, data, links, expect=()):
    with open(os.path.join(HERE, name + '.eml'), 'wb') as f:
        f.write(data)
    with open(os.path.join(HERE, name + '.links'), 'w') as f:
        f.write('# written by make-fixtures.py (ISC); exact expected set\n')
        for l in links:
            f.write(l + '\n')
    if expect:
        with open(os.path.join(HERE, name + '.expect'), 'w') as f:
            f.write('# written by make-fixtures.py\n')
            for e in expect:
                f.write(e + '\n')


def seed(target, name, data):
    d = os.path.join(FUZZ, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


if __name__ == '__main__':
    T = '\t'
    tn = tnef_stream()
    write('tnef', mail('winmail', [('application/ms-tnef', 'winmail.dat', tn)]),
          ['http://tnef-html.example.com/pay' + T + 'where=attachment',
           'http://tnef-text.example.org/x' + T + 'where=attachment',
           'http://tnef-body.example.net/' + T + 'where=attachment',
           'http://tnef-rtf.example.com/r' + T + 'where=attachment'],
          ['rcpt b@example.org', 'att %s application/vnd.ms-tnef' % sha(tn),
           'att %s text/html' % sha(b'<html><body><a href="http://tnef-html.example.com/pay">pay</a></body></html>'),
           'att %s text/plain' % sha(b'notes: see http://tnef-text.example.org/x for details\r\n'),
           'attname invoice.html', 'attname notes.txt'])
    pdf = pdf_objstm()
    write('pdf_objstm', mail('pdf', [('application/pdf', 'statement.pdf', pdf)]),
          ['http://pdf-objstm.example.com/p' + T + 'where=attachment'],
          ['rcpt b@example.org', 'att %s application/pdf' % sha(pdf)])
    dx = docx()
    write('docx', mail('docx', [('application/vnd.openxmlformats-officedocument.wordprocessingml.document', 'offer.docx', dx)]),
          ['https://docx-rel.example.com/r?a=1&b=2' + T + 'where=attachment',
           'http://docx-template.example.net/t.dotm',
           'https://docx-text.example.org/t', 'https://docx-field.example.net/f'],
          ['rcpt b@example.org',
           'att %s application/vnd.openxmlformats-officedocument.wordprocessingml.document' % sha(dx),
           'member word/document.xml', 'member [Content_Types].xml'])
    z, inner, tgz, gz = archives()
    write('archives', mail('archives', [('application/zip', 'files.zip', z),
                                        ('application/gzip', 'bundle.tar.gz', tgz),
                                        ('application/gzip', 'note.txt.gz', gz)]),
          ['http://zip-member.example.com/z', 'http://zip-html.example.org/h',
           'http://zip-inner.example.net/c', 'http://tar-member.example.com/t',
           'http://gz-single.example.org/g'],
          ['rcpt b@example.org',
           'att %s application/zip' % sha(z), 'att %s application/gzip' % sha(tgz),
           'att %s application/gzip' % sha(gz),
           'member a.txt %s' % sha(b'see http://zip-member.example.com/z\n'),
           'member inner.zip %s' % sha(inner),
           'member inner.zip!/c.txt %s' % sha(b'inner http://zip-inner.example.net/c\n'),
           'member dir/readme.txt %s' % sha(b'tar member http://tar-member.example.com/t\n'),
           'member secret.doc encrypted',
           'member note.txt %s' % sha(b'single gzip file http://gz-single.example.org/g\n')])
    bz = bomb()
    write('bomb', mail('bomb', [('application/zip', 'zeros.zip', bz)]), [],
          ['rcpt b@example.org', 'att %s application/zip' % sha(bz), 'finding expand_limit',
           'member zeros.bin truncated'])
    # fuzz seeds: the raw containers
    seed('fuzz_tnef', 'winmail.dat', tn)
    seed('fuzz_tnef', 'lzfu-only.dat', struct.pack('<IH', 0x223E9F78, 1) + tnef_attr(1, 0x00069003, mapi_props([(0x0102, 0x1009, lzfu_literals(b'{\\rtf1 http://x.example.com/}'))])))
    seed('fuzz_pdf', 'objstm.pdf', pdf)
    seed('fuzz_archive', 'offer.docx', dx)
    seed('fuzz_archive', 'files.zip', z)
    seed('fuzz_archive', 'bundle.tar.gz', tgz)
    seed('fuzz_archive', 'note.txt.gz', gz)
