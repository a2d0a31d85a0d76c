/*
 * mxbait dashboard.  Every string from the API is attacker-controlled (usernames,
 * HELO names, subjects, URLs, file names, whole messages), so this file has ONE way to
 * put text on the page: text nodes (el() and text() below).  Nothing is ever assigned
 * to innerHTML/outerHTML or passed to eval, and the server's CSP requires Trusted Types
 * with no policy, so the browser itself would refuse such an assignment.  Links are
 * only ever to this dashboard's own routes (#/...) or API paths built here with
 * encodeURIComponent; an attacker's URL is shown as text and never becomes an href.
 * The one exception to "never rendered": a message's HTML body inside an iframe that
 * is sandboxed (no allow-scripts, no allow-same-origin) and whose document the server
 * sends with a CSP of its own (sandbox; nothing but inline style and data: images).
 * Control characters, bidirectional overrides and other invisible code points in
 * attacker text are shown as visible \u{XXXX} escapes (so an RTL override cannot
 * reorder what a row says).
 */
'use strict';

(function () {
  const main = () => document.getElementById('main');

  // ---- the one escaping place ----

  // Control, bidi, zero-width and other format characters, shown visibly.
  const INVISIBLE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u00ad\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\ufff9-\ufffb\ufffd]/g;

  function visible(s) {
    return String(s).replace(INVISIBLE, (c) => {
      if (c === '\ufffd') return '\u{fffd}';
      return '\\u{' + c.codePointAt(0).toString(16).toUpperCase() + '}';
    });
  }

  // A text node for any value; long attacker strings are cut for tables.
  function text(v, max) {
    if (v === null || v === undefined) return document.createTextNode('-');
    let s = visible(Array.isArray(v) ? v.join(', ') : v);
    if (max && s.length > max) s = s.slice(0, max) + '\u2026 [' + (s.length - max) + ' more]';
    return document.createTextNode(s);
  }

  // Elements: attributes from a fixed list only; children are nodes or values
  // (values become text nodes).
  const ATTRS = new Set(['class', 'title', 'role', 'tabindex', 'colspan', 'scope',
    'aria-label', 'aria-current', 'aria-live', 'data-page', 'download', 'type',
    'id', 'for', 'placeholder', 'maxlength', 'autocomplete', 'spellcheck', 'value',
    'referrerpolicy']);
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    // A frame is sandboxed (no script, no same origin) before it has any source.
    if (tag === 'iframe') e.setAttribute('sandbox', '');
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'src' && tag === 'iframe') {
        // Only a message's HTML, which the server sends with its own sandbox CSP.
        if (typeof v !== 'string' || !/^\/api\/v1\/messages\/[^/]+\/html$/.test(v))
          throw new Error('refusing frame ' + v);
        e.setAttribute('src', v);
      } else if (k === 'href') {
        // Only our own routes and API paths: never a value from the data.
        if (typeof v !== 'string' || !(v.startsWith('#/') || v.startsWith('/api/v1/')))
          throw new Error('refusing href ' + v);
        e.setAttribute('href', v);
      } else if (k === 'onclick') {
        e.addEventListener('click', v);
      } else if (ATTRS.has(k)) {
        e.setAttribute(k, String(v));
      } else {
        throw new Error('attribute not allowed: ' + k);
      }
    }
    for (const k of kids) {
      if (k === null || k === undefined || k === false) continue;
      e.appendChild(k instanceof Node ? k : text(k));
    }
    return e;
  }

  // Attacker text in a cell: monospace, isolated direction, cut.
  function hostile(v, max) {
    const t = v === null || v === undefined ? '' : visible(Array.isArray(v) ? v.join(', ') : v);
    return el('span', { class: 'hostile', title: t.slice(0, 2000) }, text(v, max || 120));
  }

  const route = (...parts) => '#/' + parts.map(encodeURIComponent).join('/');
  const api = (path, params) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null) q.set(k, v);
    const qs = q.toString();
    return '/api/v1/' + path + (qs ? '?' + qs : '');
  };

  async function getJSON(url) {
    const r = await fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    const body = await r.json().catch(() => ({ error: 'not JSON' }));
    if (!r.ok) throw new Error((body && body.error) || r.statusText);
    return body;
  }

  // Actions (admin role): POST a JSON body with the CSRF token whoami gave.
  async function act(name, body) {
    const r = await fetch('/api/v1/actions/' + encodeURIComponent(name), {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-CSRF-Token': (who && who.csrf_token) || '' },
      body: JSON.stringify(body),
    });
    const reply = await r.json().catch(() => ({ error: 'not JSON' }));
    if (!r.ok) throw new Error((reply && reply.error) || r.statusText);
    return reply;
  }
  const isAdmin = () => !!(who && who.role === 'admin' && who.csrf_token);

  // A button that runs an action, says what happened in status (a text node), then
  // shows the page again (the guard's record lands in the database a moment later).
  function actionButton(label, name, body, status, describe) {
    return el('button', { type: 'button', onclick: async (ev) => {
      const b = ev.currentTarget;
      b.disabled = true;
      status.replaceChildren(text(label + '\u2026'));
      try {
        const r = await act(name, body);
        status.replaceChildren(text(describe(r)));
        setTimeout(render, 800);
      } catch (e) {
        status.replaceChildren(el('span', { class: 'error', role: 'alert' }, label + ' failed: ' + e.message));
        b.disabled = false;
      }
    } }, label);
  }

  const num = (n) => (n === null || n === undefined ? '-' : Number(n).toLocaleString('en'));
  const when = (iso) => (iso ? String(iso).replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-');

  // ---- tables ----

  // cols: [{key, label, num, fmt(row) -> node|value, max}]
  function table(cols, rows, caption) {
    const head = el('tr', {}, ...cols.map((c) => el('th', { scope: 'col', class: c.num ? 'num' : '' }, c.label)));
    const body = rows.map((r) => el('tr', {}, ...cols.map((c) => {
      const v = c.fmt ? c.fmt(r) : r[c.key];
      const cell = v instanceof Node ? v : (c.num ? num(v) : hostile(v, c.max));
      return el('td', { class: (c.num ? 'num' : '') + (c.nowrap ? ' nowrap' : '') }, cell);
    })));
    const t = el('table', {}, caption ? el('caption', { class: 'muted' }, caption) : null,
      el('thead', {}, head), el('tbody', {}, ...body));
    if (!rows.length) t.appendChild(el('tbody', {}, el('tr', {}, el('td', { colspan: cols.length, class: 'muted' }, '(none)'))));
    return el('div', { class: 'scroll' }, t);
  }

  // ---- charts (plain SVG) ----

  const SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }

  function barChart(title, points, key, key2) {
    const W = 600, H = 160, P = 24;
    const max = Math.max(1, ...points.map((p) => p[key] || 0));
    const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title });
    const bw = (W - P) / Math.max(1, points.length);
    points.forEach((p, i) => {
      const h = ((p[key] || 0) / max) * (H - P - 4);
      const x = P + i * bw;
      const r = svg('rect', { class: 'bar', x: x.toFixed(1), y: (H - P - h).toFixed(1),
        width: Math.max(1, bw - 1).toFixed(1), height: h.toFixed(1) });
      const t = svg('title');
      t.appendChild(document.createTextNode(when(p.t) + ': ' + num(p[key]) + (key2 ? ' (' + key2 + ' ' + num(p[key2]) + ')' : '')));
      r.appendChild(t);
      s.appendChild(r);
      if (key2 && p[key2]) {
        const h2 = (p[key2] / max) * (H - P - 4);
        s.appendChild(svg('rect', { class: 'bar ok', x: x.toFixed(1), y: (H - P - h2).toFixed(1),
          width: Math.max(1, bw - 1).toFixed(1), height: h2.toFixed(1) }));
      }
    });
    const label = (x, y, str, anchor) => {
      const t = svg('text', { class: 'axis', x, y, 'text-anchor': anchor || 'start' });
      t.appendChild(document.createTextNode(str));
      s.appendChild(t);
    };
    label(2, 12, num(max));
    label(2, H - P + 2, '0');
    if (points.length) {
      label(P, H - 6, when(points[0].t).slice(11, 16));
      label(W - 2, H - 6, when(points[points.length - 1].t).slice(11, 16), 'end');
    }
    return el('figure', { class: 'chart' }, el('figcaption', {}, title), s);
  }

  // ---- pages ----

  function show(...nodes) {
    const m = main();
    m.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined && n !== false));
  }

  function failed(e) {
    show(el('p', { class: 'error', role: 'alert' }, 'Could not load: ' + e.message));
  }

  const card = (label, n) => el('div', { class: 'card' }, el('div', { class: 'n' }, num(n)), el('div', { class: 'l' }, label));

  let liveCounters = null;

  async function overview() {
    const [st, auth, sess, src, msgs, creds] = await Promise.all([
      getJSON(api('stats')),
      getJSON(api('timeseries', { series: 'auth', since: '1h', step: '1m' })),
      getJSON(api('timeseries', { series: 'sessions', since: '1h', step: '1m' })),
      getJSON(api('timeseries', { series: 'sources', since: '1h', step: '1m' })),
      getJSON(api('timeseries', { series: 'messages', since: '24h', step: '1h' })),
      getJSON(api('credentials', { top: 10 })),
    ]);
    liveCounters = el('div', { class: 'cards', 'aria-live': 'polite' });
    show(
      el('h1', {}, 'Overview'),
      el('div', { class: 'cards' },
        card('sessions', st.sessions), card('distinct IPs', st.distinct_ips),
        card('auth attempts failed', st.auth.failed), card('auth attempts ok', st.auth.ok),
        card('messages captured', st.messages), card('cracked accounts', creds.cracked.filter((c) => c.kind === 'cracked').length),
        card('events dropped', st.events_dropped)),
      el('h2', {}, 'Live (since this page opened)'), liveCounters,
      el('h2', {}, 'Last hour'),
      el('div', { class: 'charts' },
        barChart('Auth attempts per minute (red: successful)', auth.points, 'count', 'ok'),
        barChart('Connections per minute', sess.points, 'count'),
        barChart('Source IPs per minute', src.points, 'count'),
        barChart('Messages captured per hour (24 h)', msgs.points, 'count')),
      el('h2', {}, 'Cracked accounts'),
      table([
        { key: 'username', label: 'Username', max: 40 },
        { key: 'password', label: 'Password', max: 40 },
        { key: 'kind', label: 'Kind' },
        { key: 'cracked_seen', label: 'Cracked', fmt: (r) => when(r.cracked) },
        { key: 'messages', label: 'Messages', num: true },
        { key: 'last_subject', label: 'Last subject', max: 80 },
      ], creds.cracked));
  }

  // Horizontal bars: one per row (label, value), for the countries.
  function hbars(title, rows) {
    const W = 600, R = 18, L = 150;
    const max = Math.max(1, ...rows.map((r) => r[1]));
    const s = svg('svg', { viewBox: `0 0 ${W} ${Math.max(R, rows.length * R)}`, role: 'img', 'aria-label': title });
    rows.forEach(([label, v], i) => {
      const t = svg('text', { class: 'axis', x: 0, y: i * R + 13 });
      t.appendChild(document.createTextNode(visible(label).slice(0, 24)));
      s.appendChild(t);
      s.appendChild(svg('rect', { class: 'bar', x: L, y: i * R + 3, height: R - 6,
        width: Math.max(1, ((W - L - 60) * v) / max).toFixed(1) }));
      const n = svg('text', { class: 'axis', x: W - 2, y: i * R + 13, 'text-anchor': 'end' });
      n.appendChild(document.createTextNode(num(v)));
      s.appendChild(n);
    });
    return el('figure', { class: 'chart' }, el('figcaption', {}, title), s);
  }

  let who = null;

  async function attackers() {
    const a = await getJSON(api('attackers', { top: 100 }));
    let geo = [];
    if (who && who.geoip) {
      const c = await getJSON(api('countries', { top: 50 }));
      geo = [el('h2', {}, 'Countries (' + 'GeoIP database)'),
        hbars('Auth attempts by country', c.countries.slice(0, 20).map((r) => [r.country ? r.country + ' ' + r.name : '(unknown)', r.attempts])),
        table([{ key: 'country', label: 'Country', fmt: (r) => r.country || '(unknown)' }, { key: 'name', label: 'Name', max: 40 },
          { key: 'ips', label: 'IPs', num: true }, { key: 'sessions', label: 'Sessions', num: true },
          { key: 'attempts', label: 'Attempts', num: true }], c.countries)];
    }
    const common = [
      { key: 'attempts', label: 'Attempts', num: true }, { key: 'usernames', label: 'Usernames', num: true },
      { key: 'successes', label: 'OK', num: true }, { key: 'sessions', label: 'Sessions', num: true },
      { key: 'messages', label: 'Msgs', num: true }, { key: 'probes', label: 'Probes', num: true },
      { key: 'first', label: 'First seen', fmt: (r) => when(r.first_seen) },
      { key: 'last', label: 'Last seen', fmt: (r) => when(r.last_seen) },
      { key: 'protocols', label: 'Protocols', max: 60 }];
    show(el('h1', {}, 'Attackers'), ...geo,
      el('h2', {}, 'Networks (/24 IPv4, /48 IPv6)'),
      table([{ key: 'prefix', label: 'Network', max: 60 }, { key: 'ips', label: 'IPs', num: true }, ...common], a.prefixes),
      el('h2', {}, 'Addresses'),
      table([{ key: 'ip', label: 'IP', fmt: (r) => el('a', { href: route('sessions') + '?ip=' + encodeURIComponent(r.ip) }, hostile(r.ip, 60)) }, ...common], a.ips));
  }

  async function credentials() {
    const c = await getJSON(api('credentials', { top: 50 }));
    show(el('h1', {}, 'Credentials'),
      el('p', { class: 'muted' }, 'Distributed: the most distinct IPs that tried a username within ' +
        num(c.settings.window_s) + ' s reached ' + num(c.settings.min_ips) + '.'),
      el('h2', {}, 'Usernames'),
      table([{ key: 'username', label: 'Username', max: 60 }, { key: 'attempts', label: 'Attempts', num: true },
        { key: 'ips', label: 'IPs', num: true }, { key: 'passwords', label: 'Passwords', num: true },
        { key: 'successes', label: 'OK', num: true }, { key: 'peak_ips', label: 'Peak IPs', num: true },
        { key: 'distributed', label: 'Flag', fmt: (r) => (r.distributed ? el('span', { class: 'flag' }, 'DISTRIBUTED') : '') },
        { key: 'protocols', label: 'Protocols', max: 60 }], c.usernames),
      el('h2', {}, 'Passwords'),
      table([{ key: 'password', label: 'Password', max: 60 }, { key: 'attempts', label: 'Attempts', num: true },
        { key: 'usernames', label: 'Usernames', num: true }, { key: 'ips', label: 'IPs', num: true },
        { key: 'successes', label: 'OK', num: true }], c.passwords),
      el('h2', {}, 'Cracked accounts'),
      table([{ key: 'username', label: 'Username', max: 60 }, { key: 'password', label: 'Password', max: 60 },
        { key: 'kind', label: 'Kind' }, { key: 'c', label: 'Cracked', fmt: (r) => when(r.cracked) },
        { key: 'messages', label: 'Messages', num: true }, { key: 'recipients', label: 'Recipients', num: true },
        { key: 'last_subject', label: 'Last subject', max: 100 }], c.cracked),
      el('h2', {}, 'Probed addresses (RCPT/VRFY/EXPN before login)'),
      table([{ key: 'address', label: 'Address', max: 80 }, { key: 'probes', label: 'Probes', num: true },
        { key: 'ips', label: 'IPs', num: true }, { key: 'accepted', label: 'Accepted', num: true },
        { key: 'kinds', label: 'Kinds' }], c.probed_addresses));
  }

  function pager(load, next) {
    if (!next) return null;
    return el('p', {}, el('button', { type: 'button', onclick: () => load(next).catch(failed) }, 'Older \u2192'));
  }

  async function messages(cursor) {
    const m = await getJSON(api('messages', { limit: 50, cursor }));
    show(el('h1', {}, 'Messages'),
      table([{ key: 'queue_id', label: 'Queue id', fmt: (r) => el('a', { href: route('message', r.queue_id) }, hostile(r.queue_id, 30)) },
        { key: 'ts', label: 'Time (UTC)', fmt: (r) => when(r.ts) }, { key: 'src_ip', label: 'Peer', max: 45 },
        { key: 'sender', label: 'Sender', max: 60 }, { key: 'n_rcpt', label: 'Rcpt', num: true },
        { key: 'size', label: 'Size', num: true }, { key: 'subject', label: 'Subject', max: 100 }], m.data),
      pager(messages, m.next_cursor));
  }

  function kv(pairs) {
    const d = el('dl', { class: 'kv' });
    for (const [k, v] of pairs) {
      d.appendChild(el('dt', {}, k));
      d.appendChild(el('dd', {}, v instanceof Node ? v : hostile(v, 2000)));
    }
    return d;
  }

  async function message(qid) {
    const m = await getJSON(api('messages/' + encodeURIComponent(qid)));
    const a = m.analysis || {};
    const nodes = [el('h1', {}, 'Message ', hostile(m.queue_id, 40)),
      kv([['time', when(m.ts)], ['session', el('a', { href: route('session', m.session) }, hostile(m.session, 30))],
        ['peer', m.src_ip], ['sender', m.sender], ['recipients', (m.recipients || []).join(', ')],
        ['method', m.method], ['auth user', m.auth_user], ['TLS', m.tls ? 'yes' : 'no'],
        ['size', num(m.size) + ' bytes'], ['SHA-256', m.sha256 + (m.sha256_ok === false ? ' (FILE DIFFERS)' : '')],
        ['campaign', a.campaign && a.campaign.id ? el('a', { href: route('campaign', a.campaign.id) }, hostile(a.campaign.id, 40)) : '-']]),
      el('p', {}, el('a', { href: '/api/v1/messages/' + encodeURIComponent(qid) + '/raw', download: 'message.eml' },
        'Download the raw message (.eml, as an attachment)'))];
    if (m.analysis) {
      nodes.push(el('h2', {}, 'Links'),
        table([{ key: 'url', label: 'URL (normalised; never a link)', max: 200 }, { key: 'raw', label: 'As written', max: 120 },
          { key: 'flags', label: 'Flags', fmt: (r) => hostile((r.flags || []).join(', '), 80) }], a.links || []),
        el('h2', {}, 'Attachments'),
        table([{ key: 'filename', label: 'File name', max: 100 }, { key: 'declared_type', label: 'Declared', max: 60 },
          { key: 'detected_type', label: 'Detected', max: 60 }, { key: 'size', label: 'Size', num: true },
          { key: 'sha256', label: 'SHA-256', max: 64 }], a.attachments || []),
        el('h2', {}, 'Findings'),
        table([{ key: 'kind', label: 'Kind', max: 40 }, { key: 'detail', label: 'Detail', max: 200 }], a.findings || []));
    } else {
      nodes.push(el('p', { class: 'muted' }, 'Not analysed yet.'));
    }
    const html = (a.parts || []).some((p) => p.type === 'text/html' && p.disposition !== 'attachment' && !p.filename);
    if (html) {
      nodes.push(el('h2', {}, 'HTML part'),
        el('p', { class: 'muted' }, 'Rendered in a sandbox: no script runs, nothing is fetched (remote images stay blank), links lead nowhere.'),
        el('iframe', { class: 'html-view', src: '/api/v1/messages/' + encodeURIComponent(qid) + '/html',
          title: 'The message\u2019s HTML, sandboxed', referrerpolicy: 'no-referrer' }));
    }
    nodes.push(el('h2', {}, 'Source' + (m.truncated ? ' (first 256 KiB; the download has all of it)' : '')),
      el('p', { class: 'muted' }, 'Shown as text: headers, bodies and any HTML are never rendered.'),
      el('pre', { class: 'source' }, text(m.text === null ? '(the file is gone)' : m.text)));
    show(...nodes);
  }

  async function links() {
    const [l, d] = await Promise.all([getJSON(api('links', { limit: 200 })), getJSON(api('domains', { limit: 100 }))]);
    show(el('h1', {}, 'Links and domains'),
      el('p', { class: 'muted' }, 'What the spam advertises. Shown as text only: none of these is a clickable link.'),
      el('h2', {}, 'Domains'),
      table([{ key: 'domain', label: 'Domain', max: 80 }, { key: 'messages', label: 'Messages', num: true },
        { key: 'urls', label: 'URLs', num: true }, { key: 'flags', label: 'Flags', max: 80 }], d.data),
      el('h2', {}, 'URLs'),
      table([{ key: 'url', label: 'URL', max: 160 }, { key: 'domain', label: 'Domain', max: 60 },
        { key: 'messages', label: 'Messages', num: true }, { key: 'flags', label: 'Flags', max: 80 },
        { key: 'first_seen', label: 'First seen', fmt: (r) => when(r.first_seen) }], l.data));
  }

  async function campaigns() {
    const c = await getJSON(api('campaigns', { limit: 100 }));
    show(el('h1', {}, 'Campaigns'),
      table([{ key: 'id', label: 'Campaign', fmt: (r) => el('a', { href: route('campaign', r.id) }, hostile(r.id, 40)) },
        { key: 'messages', label: 'Messages', num: true }, { key: 'first_seen', label: 'First seen', fmt: (r) => when(r.first_seen) },
        { key: 'subject', label: 'Subject', max: 100 }, { key: 'senders', label: 'Senders', max: 100 }], c.data));
  }

  async function campaign(id) {
    const c = await getJSON(api('campaigns/' + encodeURIComponent(id), { limit: 200 }));
    show(el('h1', {}, 'Campaign ', hostile(id, 40)),
      table([{ key: 'message', label: 'Msg', num: true }, { key: 'from', label: 'From', max: 60 },
        { key: 'subject', label: 'Subject', max: 100 }, { key: 'client_ip', label: 'Client', max: 45 },
        { key: 'representative', label: 'Rep', num: true }], c.data));
  }

  async function sessions(cursor, ip) {
    const s = await getJSON(api('sessions', { limit: 50, cursor, ip }));
    show(el('h1', {}, 'Sessions', ip ? ' from ' : '', ip ? hostile(ip, 60) : ''),
      table([{ key: 'session', label: 'Session', fmt: (r) => el('a', { href: route('session', r.session) }, hostile(r.session, 30)) },
        { key: 'started', label: 'Start (UTC)', fmt: (r) => when(r.started) }, { key: 'src_ip', label: 'Peer', max: 45 },
        { key: 'proto', label: 'Role', max: 12 }, { key: 'helo', label: 'HELO', max: 60 },
        { key: 'auth_user', label: 'Auth', max: 40 }, { key: 'commands', label: 'Cmds', num: true },
        { key: 'messages', label: 'Msgs', num: true }, { key: 'reason', label: 'End', max: 20 }], s.data),
      pager((c) => sessions(c, ip), s.next_cursor));
  }

  async function session(id) {
    const evs = await getJSON(api('sessions/' + encodeURIComponent(id)));
    show(el('h1', {}, 'Session ', hostile(id, 30)),
      table([{ key: 'ts', label: 'Time (UTC)', fmt: (r) => when(r.ts) }, { key: 'event', label: 'Event', max: 20 },
        { key: 'fields', label: 'Fields', fmt: (r) => {
          const o = Object.assign({}, r);
          for (const k of ['ts', 'event', 'session', 'src_ip', 'src_port', 'proto']) delete o[k];
          return hostile(JSON.stringify(o), 400);
        } }], evs));
  }

  // ---- the guard's decisions ----

  // An evidence reference: a guard observation or a honeypot session (both are
  // sessions of the event store), or "msg:QUEUEID"/"session:ID" of an indicator.
  function evidenceLink(ref) {
    let m = /^(?:session:)?([0-9a-f]{16})$/.exec(ref);
    if (m) return el('a', { href: route('session', m[1]) }, hostile(m[1], 16));
    m = /^msg:([0-9A-Za-z]{1,40})$/.exec(ref);
    if (m) return el('a', { href: route('message', m[1]) }, hostile(ref, 44));
    return hostile(ref, 80);
  }
  function evidenceList(refs, max) {
    const span = el('span', {});
    (refs || []).slice(0, max || 8).forEach((r, i) => {
      if (i) span.appendChild(text(' '));
      span.appendChild(evidenceLink(String(r)));
    });
    if ((refs || []).length > (max || 8)) span.appendChild(text(' \u2026'));
    return span;
  }

  function allowForm(status) {
    const src = el('input', { id: 'allow-src', type: 'text', placeholder: '203.0.113.7 or 198.51.100.0/24', maxlength: 50, autocomplete: 'off', spellcheck: 'false' });
    const dur = el('select', { id: 'allow-for' },
      el('option', { value: '' }, 'until released'), el('option', { value: '1h' }, '1 hour'),
      el('option', { value: '24h' }, '24 hours'), el('option', { value: '7d' }, '7 days'));
    const why = el('input', { id: 'allow-why', type: 'text', placeholder: 'reason (optional)', maxlength: 31, autocomplete: 'off' });
    const go = el('button', { type: 'button', onclick: async () => {
      go.disabled = true;
      status.replaceChildren(text('Allowing\u2026'));
      try {
        const body = { source: src.value.trim() };
        if (dur.value) body.for = dur.value;
        if (why.value.trim()) body.reason = why.value.trim();
        const r = await act('decision-allow', body);
        status.replaceChildren(text(r.result === 'done' ? 'Allowed ' + r.decision.source + ' (decision ' + r.decision.id + ').'
          : 'Nothing changed: a decision in force already covers it.'));
        setTimeout(render, 800);
      } catch (e) {
        status.replaceChildren(el('span', { class: 'error', role: 'alert' }, 'Allow failed: ' + e.message));
        go.disabled = false;
      }
    } }, 'Allow');
    return el('div', { class: 'form', role: 'group', 'aria-label': 'Allow an address or prefix' },
      el('label', { for: 'allow-src' }, 'Allow (never act on) an address or prefix'), src,
      el('label', { for: 'allow-for' }, 'for'), dur,
      el('label', { for: 'allow-why' }, 'reason'), why, go);
  }

  async function decisions(cursor, all) {
    const d = await getJSON(api('decisions', { limit: 100, cursor, all: all ? 1 : undefined }));
    const status = el('p', { class: 'muted', role: 'status', 'aria-live': 'polite' });
    const admin = isAdmin() && who.guard;
    const cols = [
      { key: 'source', label: 'Source', max: 45 },
      { key: 'action', label: 'Action', nowrap: true, fmt: (r) => el('span', { class: 'act act-' + (['delay', 'divert', 'ban', 'allow'].includes(r.action) ? r.action : 'other') }, r.action || r.op || '-') },
      { key: 'state', label: 'State', max: 10, nowrap: true },
      { key: 'reason', label: 'Reason', max: 40 },
      { key: 'expires', label: 'Expires (UTC)', fmt: (r) => (r.state === 'pending' ? 'not applied yet' : r.expires ? when(r.expires) : 'never') },
      { key: 'evidence', label: 'Evidence', fmt: (r) => evidenceList(r.evidence) },
      { key: 'origin', label: 'Origin', max: 12, nowrap: true },
      { key: 'level', label: 'Level', num: true },
      { key: 'created', label: 'Made (UTC)', fmt: (r) => when(r.created) },
    ];
    if (admin) {
      cols.push({ key: 'release', label: '', nowrap: true, fmt: (r) => (r.state === 'active' && r.id
        ? actionButton('Release', 'decision-release', { source: r.source, id: r.id }, status,
          (x) => (x.result === 'done' ? 'Released ' + x.decision.source + '.' : 'Nothing changed.'))
        : '') });
    }
    show(el('h1', {}, 'Decisions'),
      el('p', { class: 'muted' }, who && who.guard
        ? 'What the guard decided about sources: delay, divert to the honeypot, ban, or allow (never act on).'
        : 'No guard runs in this daemon: decisions are listed as recorded, and cannot be changed here.'),
      admin ? allowForm(status) : null, status,
      el('p', {}, all ? el('a', { href: route('decisions') }, 'Only those in force')
        : el('a', { href: route('decisions') + '?all=1' }, 'Every decision ever made')),
      table(cols, d.data),
      pager((c) => decisions(c, all), d.next_cursor));
  }

  // ---- abuse reports ----

  const REPORT_MOVES = [
    ['Hold', 'report-hold', ['queued', 'addressing']],
    ['Release', 'report-release', ['held', 'addressing']],
    ['Retry', 'report-retry', ['failed', 'unknown', 'expired', 'rejected']],
  ];
  function reportButtons(r, status) {
    if (!isAdmin()) return '';
    const span = el('span', { class: 'buttons' });
    for (const [label, name, from] of REPORT_MOVES) {
      if (from.includes(r.state)) {
        span.appendChild(actionButton(label, name, { id: r.id }, status,
          (x) => 'Report ' + x.report.id + ' ' + x.from + ' \u2192 ' + x.report.state + '.'));
      }
    }
    return span;
  }

  const STATES = ['queued', 'addressing', 'held', 'manual', 'sending', 'transmitting', 'sent', 'duplicate', 'rejected', 'failed', 'expired', 'unknown'];

  async function reports(cursor, state) {
    const [st, l] = await Promise.all([getJSON(api('reports/stats')),
      getJSON(api('reports', { limit: 100, cursor, state }))]);
    const status = el('p', { class: 'muted', role: 'status', 'aria-live': 'polite' });
    const sinks = Object.keys(st).sort().map((k) => Object.assign({ sink: k }, st[k]));
    const filters = el('p', { class: 'filters' }, el('a', { href: route('reports'), 'aria-current': state ? 'false' : 'page' }, 'all'));
    for (const s of STATES) {
      filters.appendChild(text(' '));
      filters.appendChild(el('a', { href: route('reports') + '?state=' + s, 'aria-current': state === s ? 'page' : 'false' }, s));
    }
    const cols = [
      { key: 'id', label: 'Id', nowrap: true, fmt: (r) => el('a', { href: route('report', String(r.id)) }, String(r.id)) },
      { key: 'state', label: 'State', max: 14, nowrap: true }, { key: 'sink', label: 'Sink', max: 12, nowrap: true },
      { key: 'kind', label: 'Kind', max: 12, nowrap: true }, { key: 'subject', label: 'About', max: 60 },
      { key: 'recipient', label: 'To', max: 50 }, { key: 'title', label: 'Title', max: 80 },
      { key: 'attempts', label: 'Tries', num: true },
      { key: 'created', label: 'Made (UTC)', fmt: (r) => when(r.created) },
      { key: 'sent', label: 'Sent (UTC)', fmt: (r) => when(r.sent) },
      { key: 'last_error', label: 'Last error', max: 60 },
    ];
    if (isAdmin()) cols.push({ key: 'act', label: '', nowrap: true, fmt: (r) => reportButtons(r, status) });
    show(el('h1', {}, 'Reports'),
      el('p', { class: 'muted' }, 'Abuse reports the reporter (mxbait report --daemon) rendered: sent, held for review, or waiting.'),
      el('h2', {}, 'Per sink'),
      table([{ key: 'sink', label: 'Sink', max: 20 }, { key: 'total', label: 'Total', num: true },
        { key: 'sent', label: 'Sent', num: true }, { key: 'duplicate', label: 'Known', num: true },
        { key: 'failed', label: 'Failed', num: true }, { key: 'queued', label: 'Queued', num: true },
        { key: 'addressing', label: 'Addressing', num: true }, { key: 'held', label: 'Held', num: true },
        { key: 'manual', label: 'Manual', num: true }, { key: 'unknown', label: 'Unknown', num: true },
        { key: 'expired', label: 'Expired', num: true }], sinks),
      el('h2', {}, state ? 'Reports ' + state : 'Reports'), filters, status,
      table(cols, l.data),
      pager((c) => reports(c, state), l.next_cursor));
  }

  const PAYLOAD_MAX = 256 * 1024;

  async function report(id) {
    const r = await getJSON(api('reports/' + encodeURIComponent(id)));
    const status = el('p', { class: 'muted', role: 'status', 'aria-live': 'polite' });
    const payloadUrl = '/api/v1/reports/' + encodeURIComponent(id) + '/payload';
    const res = await fetch(payloadUrl, { credentials: 'same-origin' });
    let body = '(the payload could not be read)';
    let cut = false;
    if (res.ok) {
      const bytes = new Uint8Array(await res.arrayBuffer());
      cut = bytes.length > PAYLOAD_MAX;
      body = new TextDecoder('utf-8', { fatal: false }).decode(bytes.subarray(0, PAYLOAD_MAX));
    }
    show(el('h1', {}, 'Report ', String(r.id)),
      kv([['state', r.state], ['sink', r.sink], ['kind', r.kind], ['about', r.subject],
        ['to', r.recipient], ['contact looked up for', r.contact_query], ['title', r.title],
        ['incidents', num(r.incidents)], ['victims redacted', r.redacted ? 'yes' : 'no'],
        ['never to', (r.victim_domains || []).join(', ') || '-'],
        ['made', when(r.created)], ['expires', when(r.not_after)], ['attempts', num(r.attempts)],
        ['next attempt', when(r.next_attempt)], ['sent', when(r.sent)],
        ['last error', r.last_error], ['answer', r.response], ['type', r.content_type],
        ['size', num(r.payload_bytes) + ' bytes'], ['idempotency key', r.key]]),
      el('p', {}, reportButtons(r, status)), status,
      el('p', {}, el('a', { href: payloadUrl, download: 'report-' + r.id }, 'Download the rendered report (as an attachment)')),
      el('h2', {}, 'Rendered report' + (cut ? ' (first 256 KiB)' : '')),
      el('p', { class: 'muted' }, 'Shown as text: what the sink receives; its headers and any HTML are never rendered.'),
      el('pre', { class: 'source' }, text(body)));
  }

  // ---- indicators ----

  const KINDS = ['ip', 'prefix', 'url', 'domain', 'sender', 'sender_domain', 'attachment', 'recipient', 'recipient_domain', 'campaign'];

  async function indicators(cursor, kind) {
    const l = await getJSON(api('indicators', { limit: 200, cursor, kind }));
    const filters = el('p', { class: 'filters' }, el('a', { href: route('indicators'), 'aria-current': kind ? 'false' : 'page' }, 'all'));
    for (const k of KINDS) {
      filters.appendChild(text(' '));
      filters.appendChild(el('a', { href: route('indicators') + '?kind=' + k, 'aria-current': kind === k ? 'page' : 'false' }, k));
    }
    show(el('h1', {}, 'Indicators'),
      el('p', { class: 'muted' }, 'What the reporter derived from the captures (as of its last pass): the basis of exports and reports. Allowlisted ones are never exported.'),
      filters,
      table([{ key: 'kind', label: 'Kind', max: 16, nowrap: true }, { key: 'value', label: 'Value (never a link)', max: 100 },
        { key: 'confidence', label: 'Conf', num: true },
        { key: 'last_seen', label: 'Last seen (UTC)', fmt: (r) => when(r.last_seen) },
        { key: 'guesses', label: 'Guesses', num: true }, { key: 'probes', label: 'Probes', num: true },
        { key: 'messages', label: 'Msgs', num: true }, { key: 'logins', label: 'Logins', num: true },
        { key: 'flags', label: 'Flags', fmt: (r) => hostile((r.flags || []).concat(r.allowlisted ? ['ALLOWLISTED'] : []).join(' '), 60) },
        { key: 'evidence', label: 'Evidence', fmt: (r) => evidenceList(r.evidence, 4) }], l.data),
      pager((c) => indicators(c, kind), l.next_cursor));
  }

  const pages = { overview, attackers, credentials, messages, message, links, campaigns, campaign, sessions, session,
    decisions, reports, report, indicators };

  async function render() {
    const h = location.hash.replace(/^#\/?/, '');
    const [pathPart, qs] = h.split('?');
    const parts = (pathPart || 'overview').split('/').map((p) => { try { return decodeURIComponent(p); } catch (e) { return p; } });
    const name = pages[parts[0]] ? parts[0] : 'overview';
    const top = { message: 'messages', campaign: 'campaigns', session: 'sessions', report: 'reports' }[name] || name;
    for (const a of document.querySelectorAll('header nav a')) {
      if (a.getAttribute('data-page') === top) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    liveCounters = null;
    show(el('p', { class: 'muted' }, 'Loading\u2026'));
    try {
      const q = new URLSearchParams(qs || '');
      if (name === 'sessions') {
        await sessions(undefined, q.get('ip') || undefined);
      } else if (name === 'decisions') {
        await decisions(undefined, q.get('all') === '1');
      } else if (name === 'reports') {
        const st = q.get('state');
        await reports(undefined, STATES.includes(st) ? st : undefined);
      } else if (name === 'indicators') {
        const k = q.get('kind');
        await indicators(undefined, KINDS.includes(k) ? k : undefined);
      } else {
        await pages[name](parts[1]);
      }
      document.title = 'mxbait: ' + name;
    } catch (e) {
      failed(e);
    }
  }

  // ---- live updates (server-sent events: numbers only) ----

  function live() {
    if (!window.EventSource) return;
    const es = new EventSource('/api/v1/stream');
    let first = null;
    es.addEventListener('tick', (ev) => {
      let t;
      try { t = JSON.parse(ev.data); } catch (e) { return; }
      if (!first) first = t;
      const badge = document.getElementById('live');
      badge.replaceChildren(text('live: ' + num(t.sessions_open) + ' open, ' + num(t.d_auth) + ' auth/s'));
      if (liveCounters) {
        liveCounters.replaceChildren(card('sessions open', t.sessions_open),
          card('connections', t.connections - first.connections),
          card('auth attempts', t.auth - first.auth),
          card('auth ok', t.auth_ok - first.auth_ok),
          card('messages', t.messages - first.messages));
      }
    });
  }

  async function whoami() {
    try {
      const w = await getJSON(api('whoami'));
      who = w;
      document.getElementById('who').replaceChildren(text('signed in as ' + w.user + ' (' + w.role + '), mxbait ' + w.version));
    } catch (e) { /* shown by the page itself */ }
  }

  window.addEventListener('hashchange', () => { render(); main().focus(); });
  document.addEventListener('DOMContentLoaded', () => { whoami().then(render); live(); });
})();
