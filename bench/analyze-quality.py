#!/usr/bin/python3
"""analyze-quality.py: quality figures of the analyzer (not a test; prints figures).

1. Links: precision and recall of `mxbait analyze` on the labeled set
   (tests/analyze/labeled/*.eml with their hand-checked *.links), on the independently
   labeled set alone (tests/analyze/independent: link sets written by hand from the raw
   messages, not from analyzer output), and of the peer
   (Python email + regex, bench/analyze-peer.py, with scheme/host lower-cased) for
   comparison.
2. Links against SpamAssassin 4 (Debian `spamassassin`, bench/analyze-sa-uris.pl) on real
   spam and ham the analyzer was never tuned on (../shared/corpus/phishing-pot, read in
   place, and SpamAssassin's nice/ ham): URL recall (a SpamAssassin URI counts as found
   when mxbait has one of its cleaned forms), host recall, and precision.  Precision:
   a host mxbait reports is right when SpamAssassin reports it too, or when it comes
   from an explicit URL (scheme or HTML attribute or redirect target), or when it is
   written in the message as a token of its own (not glued to other letters); the rest
   are counted as inventions and printed.
3. Campaigns: bases are real messages read in place from ../shared/corpus
   (phishing-pot, CC BY-NC: never copied; spamassassin spam), reduced to their text and
   kept only when no two bases share more than 20% of their word 3-shingles.  For each
   base the script generates variants: personalised (recipient name, ids, digits),
   hash-busted (junk words and tokens sprinkled in), reworded (15% of words replaced,
   5% dropped) and both personalised+hash-busted; all are analysed into a fresh
   analysis.db.  Recall = variants that joined their base's campaign; false merges =
   bases that share a campaign with another base, and variants that joined another
   base's campaign.

usage: bench/analyze-quality.py [BUILD_DIR] [N_BASES] [N_HELD] [--no-sa]
"""
import email
import email.policy
import html.parser
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NO_SA = '--no-sa' in sys.argv
ARGS = [a for a in sys.argv[1:] if not a.startswith('--')]
BUILD = ARGS[0] if len(ARGS) > 0 else os.path.join(ROOT, 'build')
N_BASES = int(ARGS[1]) if len(ARGS) > 1 else 150
N_HELD = int(ARGS[2]) if len(ARGS) > 2 else 150
MXBAIT = os.path.join(BUILD, 'src', 'mxbait')
CORPUS = os.environ.get('MXB_CORPUS', os.path.join(ROOT, '..', 'shared', 'corpus'))
if not os.path.isdir(CORPUS):
    CORPUS = '/work/shared/corpus'
sys.path.insert(0, HERE)
import importlib.util  # noqa: E402
_spec = importlib.util.spec_from_file_location('peer', os.path.join(HERE, 'analyze-peer.py'))
peer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(peer)


def run_mxbait(paths):
    out = subprocess.run([MXBAIT, 'analyze'] + paths, check=True, capture_output=True).stdout
    return [json.loads(l) for l in out.decode().splitlines()]


def pr(tp, fp, fn):
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return p, r


def light_norm(u):
    m = re.match(r'(?i)^([a-z]+)://([^/?#]*)(.*)$', u)
    if not m:
        return u
    path = m.group(3) or '/'
    if path[0] != '/':
        path = '/' + path
    return '%s://%s%s' % (m.group(1).lower(), m.group(2).lower(), path)


def links_quality(sub='labeled', title='labeled set'):
    lab = os.path.join(ROOT, 'tests', 'analyze', sub)
    emls = sorted(os.path.join(lab, f) for f in os.listdir(lab) if f.endswith('.eml'))
    expect = {}
    for e in emls:
        with open(e[:-4] + '.links') as fh:
            expect[e] = {l.split('\t')[0].rstrip('\n') for l in fh
                         if l.strip() and not l.startswith('#')}
    res = {}
    for a in run_mxbait(emls):
        # a file that starts with an mbox "From " line is read as an mbox: its messages
        # (one, normally) count together
        res.setdefault(re.sub(r'#[0-9]+$', '', a['source']), set()).update(
            l['url'] for l in a['links'])
    tp = fp = fn = 0
    ptp = pfp = pfn = 0
    for e in emls:
        got, exp = res.get(e, set()), expect[e]
        tp += len(got & exp)
        fp += len(got - exp)
        fn += len(exp - got)
        with open(e, 'rb') as fh:
            pg = {light_norm(u) for u in peer.analyse(fh.read())['links']}
        ptp += len(pg & exp)
        pfp += len(pg - exp)
        pfn += len(exp - pg)
    n = sum(len(v) for v in expect.values())
    p, r = pr(tp, fp, fn)
    pp, prr = pr(ptp, pfp, pfn)
    print('links: %s %d messages, %d expected links' % (title, len(emls), n))
    print('links: mxbait           precision %.3f  recall %.3f  (tp %d, fp %d, fn %d)'
          % (p, r, tp, fp, fn))
    print('links: python+regex     precision %.3f  recall %.3f  (tp %d, fp %d, fn %d)'
          % (pp, prr, ptp, pfp, pfn))


def canon(u):
    """A comparison key for one URL, from mxbait or SpamAssassin: scheme and host lower
    case, userinfo, default port and fragment dropped, escapes decoded, '/' for an
    empty path, a lone trailing '?' dropped."""
    m = re.match(r'(?i)^([a-z]+)://([^/?#]*)([^#]*)', u)
    if not m:
        return u
    scheme, auth, rest = m.group(1).lower(), m.group(2), m.group(3)
    auth = auth.rsplit('@', 1)[-1].lower()
    if auth.endswith(':80') and scheme == 'http' or auth.endswith(':443') and scheme == 'https':
        auth = auth.rsplit(':', 1)[0]
    auth = auth.rstrip('.')
    # both sides fully percent-decoded: the two extractors escape differently
    for _ in range(2):
        rest = re.sub(r'%([0-9A-Fa-f]{2})', lambda x: chr(int(x.group(1), 16)), rest)
    if not rest.startswith('/'):
        rest = '/' + rest
    if rest.endswith('?'):
        rest = rest[:-1]
    return '%s://%s%s' % (scheme, auth, rest)


def decoded_text(raw):
    """Every text part decoded (transfer encoding and charset) plus the Subject: where a
    host written in the message can be looked for."""
    out = []
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        out.append(str(msg.get('subject', '')))
        for part in msg.walk():
            if part.is_multipart():
                continue
            try:
                c = part.get_content()
            except Exception:
                c = part.get_payload(decode=True) or b''
            if isinstance(c, bytes):
                c = c.decode('latin-1')
            if isinstance(c, str):
                out.append(c)
    except Exception:
        pass
    out.append(raw.decode('latin-1'))
    return '\n'.join(out)


def sa_reference(dirs):
    sa = os.path.join(HERE, 'analyze-sa-uris.pl')
    files = []
    for d in dirs:
        base = os.path.join(CORPUS, d)
        files += sorted(os.path.join(base, f) for f in os.listdir(base)
                        if os.path.isfile(os.path.join(base, f)) and not f.endswith(('.md', 'SUMS')))
    ref = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(0, len(files), 200):
            out = subprocess.run(['perl', sa] + files[k:k + 200], check=True, capture_output=True,
                                 cwd=tmp, env=dict(os.environ, TMPDIR=tmp)).stdout
            for l in out.decode().splitlines():
                j = json.loads(l)
                ref[j['file']] = j['groups']
    mx = {}
    for k in range(0, len(files), 200):
        for a in run_mxbait(files[k:k + 200]):
            mx.setdefault(re.sub(r'#[0-9]+$', '', a['source']), []).extend(a['links'])
    g_tot = g_hit = h_tot = h_hit = 0
    agree = explicit = written = 0
    invented = []
    for f in files:
        links = mx.get(f, [])
        murls = {canon(l['url']) for l in links}
        mhosts = {}
        for l in links:
            h = (l.get('host') or '').lower()
            if h:
                mhosts.setdefault(h, []).append(l)
        shosts = set()
        for g in ref.get(f, []):
            if not g['h']:
                continue  # SpamAssassin's own garbage ("http://page.html"): not a host
            shosts.update(g['h'])
            g_tot += 1
            if any(canon(v) in murls for v in g['v']):
                g_hit += 1
        h_tot += len(shosts)
        h_hit += len(shosts & set(mhosts))
        text = None
        for h, ls in mhosts.items():
            if h in shosts:
                agree += 1
                continue
            if any(re.match(r'(?i)^(?:https?|ftp|hxxps?)', l.get('raw') or '') or
                   set(l['where']) & {'html_href', 'html_src', 'html_action', 'html_meta', 'html_css',
                                      'html_srcset', 'redirect', 'attachment', 'header'}
                   for l in ls):
                explicit += 1
                continue
            if text is None:
                with open(f, 'rb') as fh:
                    text = decoded_text(fh.read())
            if re.search(r'(?<![\w.-])' + re.escape(h) + r'(?![\w-])', text, re.I) or \
                    re.search(r'(?<![\w.-])' + re.escape(ls[0].get('raw') or '@@') + r'(?![\w-])', text, re.I):
                written += 1
            else:
                invented.append((os.path.relpath(f, CORPUS), h, ls[0].get('raw')))
    total = agree + explicit + written + len(invented)
    print('links vs SpamAssassin 4.0 (%s): %d messages' % (' + '.join(dirs), len(files)))
    print('links:   URL recall  %.3f  (%d of %d SpamAssassin URIs with a valid host)'
          % (g_hit / max(g_tot, 1), g_hit, g_tot))
    print('links:   host recall %.3f  (%d of %d)' % (h_hit / max(h_tot, 1), h_hit, h_tot))
    print('links:   host precision %.3f  (%d hosts: %d also SpamAssassin\'s, %d from explicit '
          'URLs, %d written as a token in the message, %d invented)'
          % ((total - len(invented)) / max(total, 1), total, agree, explicit, written, len(invented)))
    for fi, h, raw in invented[:40]:
        print('links:     invented? %s  %s  (raw %r)' % (fi, h, raw))


class Text(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.out, self.skip = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in ('style', 'script'):
            self.skip += 1

    def handle_endtag(self, tag):
        if tag in ('style', 'script') and self.skip:
            self.skip -= 1

    def handle_data(self, d):
        if not self.skip:
            self.out.append(d)


def text_of(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    plain, htm = None, None
    for part in msg.walk():
        if part.is_multipart() or part.get_filename():
            continue
        try:
            c = part.get_content()
        except Exception:
            continue
        if not isinstance(c, str):
            continue
        if part.get_content_type() == 'text/plain' and plain is None:
            plain = c
        elif part.get_content_type() == 'text/html' and htm is None:
            htm = c
    if plain and len(plain.split()) >= 40:
        return plain, str(msg.get('subject', ''))
    if htm:
        t = Text()
        try:
            t.feed(htm)
        except Exception:
            return None, None
        return ' '.join(' '.join(t.out).split()), str(msg.get('subject', ''))
    return plain, str(msg.get('subject', ''))


def shingles(text):
    w = re.findall(r'[a-zA-Z\u00c0-\uffff]+', text.lower())
    return {' '.join(w[i:i + 3]) for i in range(len(w) - 2)}


def site_keys(text):
    """Spamvertised host + first path segment of the URLs written in a text (not
    images), the bench's own reading of the campaign strong key."""
    keys = set()
    for m in re.finditer(r'(?i)https?://([a-z0-9.-]+)(/[^\s/?#"<>]{2,})', text):
        seg = m.group(2)
        if re.search(r'(?i)\.(png|jpe?g|gif|webp|svg|css|js|ico)$', seg):
            continue
        keys.add(m.group(1).lower() + seg)
    return keys


NAMES = ['Alice Martin', 'Bob Keller', 'Carla Nunes', 'Dmitri Volkov', 'Eva Schmidt',
         'Farid Haddad', 'Grace Liu', 'Hugo Dubois', 'Ines Costa', 'Jonas Berg']


def junk(rng):
    return ''.join(rng.choice('bcdfghjklmnpqrstvwxz') for _ in range(rng.randint(5, 10)))


def variant(kind, text, rng, vocab):
    words = text.split()
    name = rng.choice(NAMES)
    if kind in ('personalised', 'both'):
        first = name.split()[0]
        words = ['Dear', first + ','] + words
        for _ in range(3):
            words.insert(rng.randrange(len(words)), first)
        for _ in range(4):
            words.insert(rng.randrange(len(words)), 'ref#%d' % rng.randint(10000, 99999))
        words.append('Account %s, ID %d' % (name, rng.randint(100000, 999999)))
    if kind in ('hashbusted', 'both'):
        out = []
        for i, w in enumerate(words):
            out.append(w)
            if rng.random() < 0.07:
                out.append(junk(rng))
        words = out + [junk(rng) for _ in range(8)]
    if kind == 'reworded':
        out = []
        for w in words:
            r = rng.random()
            if r < 0.05:
                continue
            out.append(rng.choice(vocab) if r < 0.20 else w)
        words = out
    return ' '.join(words), name


def mail(to_name, subject, body, n):
    addr = to_name.lower().replace(' ', '.') + '@victims.example'
    return ('From: Service <notice@sender%d.example>\r\nTo: %s <%s>\r\nSubject: %s\r\n'
            'Message-ID: <%d@gen.example>\r\nMIME-Version: 1.0\r\n'
            'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'
            '%s\r\n' % (n % 7, to_name, addr, subject.replace('\n', ' ')[:120], n, body)
            ).encode('utf-8', 'replace')


def campaign_quality():
    rng = random.Random(int(os.environ.get("MXB_SEED", "4")))
    cands = []
    for d in ('phishing-pot', 'spamassassin-test-data/spam'):
        base = os.path.join(CORPUS, d)
        for f in sorted(os.listdir(base)):
            p = os.path.join(base, f)
            if os.path.isfile(p) and not f.endswith(('.md', 'SUMS')):
                cands.append(p)
    rng.shuffle(cands)
    bases = []
    kept_sh = []
    kept_keys = set()
    for p in cands:
        if len(bases) >= N_BASES + N_HELD:
            break
        with open(p, 'rb') as fh:
            t, subj = text_of(fh.read())
        if not t or len(t.split()) < 40:
            continue
        sh = shingles(t)
        if len(sh) < 30:
            continue
        if any(len(sh & o) / len(sh | o) > 0.2 for o in kept_sh):
            continue
        # two messages advertising the same site (host + first path segment) are one
        # campaign by definition (the strong key): never two distinct bases
        keys = site_keys(t)
        if keys & kept_keys:
            continue
        kept_keys.update(keys)
        kept_sh.append(sh)
        bases.append((p, t, subj))
    # held apart: distinct messages with no variants, analysed last; each must found a
    # campaign of its own (any other outcome is a false merge)
    held = bases[N_BASES:]
    bases = bases[:N_BASES]
    # replacement words: plain words only (a URL among them would be a strong key)
    vocab = [w for _, t, _ in bases for w in t.split()[:50] if re.fullmatch(r'[^\W\d_]+', w)]
    kinds = ['personalised', 'hashbusted', 'reworded', 'both']
    with tempfile.TemporaryDirectory() as tmp:
        mdir = os.path.join(tmp, 'mail')
        data = os.path.join(tmp, 'data')
        os.makedirs(mdir)
        os.makedirs(data)
        truth = {}
        n = 0
        # bases first (they become representatives), then the variants, shuffled
        for bi, (p, t, subj) in enumerate(bases):
            n += 1
            name = 'b%04d.eml' % bi
            with open(os.path.join(mdir, name), 'wb') as fh:
                fh.write(mail(rng.choice(NAMES), subj, t, n))
            truth[name] = (bi, 'base')
        vs = []
        for bi, (p, t, subj) in enumerate(bases):
            for k in kinds:
                vs.append((bi, k))
        rng.shuffle(vs)
        for vi, (bi, k) in enumerate(vs):
            n += 1
            body, name = variant(k, bases[bi][1], rng, vocab)
            fname = 'v%05d.eml' % vi
            with open(os.path.join(mdir, fname), 'wb') as fh:
                fh.write(mail(name, bases[bi][2] + ' #%d' % rng.randint(1, 999), body, n))
            truth[fname] = (bi, k)
        for hi, (p, t, subj) in enumerate(held):
            n += 1
            name = 'z%04d.eml' % hi  # after every v*.eml
            with open(os.path.join(mdir, name), 'wb') as fh:
                fh.write(mail(rng.choice(NAMES), subj, t, n))
            truth[name] = (-1 - hi, 'held')
        subprocess.run([MXBAIT, 'analyze', '--store', '--quiet', '-d', data, mdir], check=True)
        adb = sqlite3.connect(os.path.join(data, "analysis.db"))
        if os.environ.get("MXB_KEEP"):
            import shutil; shutil.copy(os.path.join(data, "analysis.db"), os.environ["MXB_KEEP"])
        merges = list(adb.execute('SELECT reason FROM campaign_merges'))
        # why a message is in its campaign: similarity with the representative
        why = {}
        for src, mh, mw, tp, rmh, rmw, rtp, rsrc in adb.execute(
                'SELECT m.source, m.minhash, m.minhash_w, m.template, r.minhash, r.minhash_w,'
                ' r.template, r.source FROM messages m JOIN campaigns c ON c.id = m.campaign_id'
                ' JOIN messages r ON r.id = c.rep_message'):
            def sim(x, y):
                if not x or not y or len(x) != len(y):
                    return -1
                return sum(x[i:i + 8] == y[i:i + 8] for i in range(0, len(x), 8)) / (len(x) / 8)
            why[os.path.basename(src)] = (os.path.basename(rsrc), sim(mh, rmh), sim(mw, rmw), tp == rtp)
        db = sqlite3.connect(os.path.join(data, 'analysis.db'))
        camp = {os.path.basename(s): c for s, c in
                db.execute('SELECT source, campaign_id FROM messages')}
    base_camp = {}
    for f, (bi, k) in truth.items():
        if k == 'base':
            base_camp[bi] = camp[f]
    hit = {k: 0 for k in kinds}
    tot = {k: 0 for k in kinds}
    wrong = 0
    camp_to_bases = {}
    for bi, c in base_camp.items():
        camp_to_bases.setdefault(c, []).append(bi)
    members = {}
    for f, c in camp.items():
        members.setdefault(c, []).append(f)
    held_merged = sum(1 for f, (bi, k) in truth.items() if k == 'held' and len(members[camp[f]]) > 1)
    for f, (bi, k) in truth.items():
        if k in ('base', 'held'):
            continue
        tot[k] += 1
        if camp[f] == base_camp[bi]:
            hit[k] += 1
        elif camp[f] in camp_to_bases:
            wrong += 1
    merged = sum(len(v) for v in camp_to_bases.values() if len(v) > 1)
    allv = sum(tot.values())
    print('campaigns: %d distinct bases (pairwise shingle Jaccard <= 0.2), %d variants'
          % (len(bases), allv))
    for k in kinds:
        print('campaigns: recall %-13s %.3f  (%d/%d)' % (k, hit[k] / max(tot[k], 1), hit[k], tot[k]))
    print('campaigns: recall overall       %.3f' % (sum(hit.values()) / max(allv, 1)))
    print('campaigns: %d held-apart bases (no variants, analysed last)' % len(held))
    print('campaigns: false merges: %d bases share a campaign with another base; '
          '%d variants joined another base\'s campaign; %d held-apart bases joined a campaign'
          % (merged, wrong, held_merged))
    print('campaigns: false-merge rate %.4f  (%d of %d messages)'
          % ((merged + wrong + held_merged) / max(len(truth), 1), merged + wrong + held_merged,
             len(truth)))
    print('campaigns: merges through representatives: %d (%s)' % (
        len(merges), ', '.join('%s x%d' % (r, c) for r, c in sorted(
            {m[0].split(' (')[0]: sum(1 for x in merges if x[0].split(' (')[0] == m[0].split(' (')[0])
             for m in merges}.items()))))
    for f, (bi, k) in sorted(truth.items()):
        if (k == 'held' and len(members[camp[f]]) > 1) or (k == 'base' and len(camp_to_bases[camp[f]]) > 1
                                                          and why[f][0] != f):
            r = why[f]
            print('campaigns:   %s %s joined %s: shingles %.2f, words %.2f, template %s'
                  % (k, f, r[0], r[1], r[2], 'same' if r[3] else 'different'))
    for c, bs in camp_to_bases.items():
        if len(bs) > 1:
            print('campaigns:   merged bases: %s' % ' + '.join(
                os.path.relpath(bases[b][0], CORPUS) for b in bs))


if __name__ == '__main__':
    if not os.access(MXBAIT, os.X_OK):
        sys.exit('analyze-quality: no %s (build first)' % MXBAIT)
    links_quality()
    links_quality('independent', 'independent set')
    if not NO_SA:
        sa_reference(['phishing-pot', 'spamassassin-test-data/nice'])
    campaign_quality()
