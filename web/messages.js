// Messages as the server sends them (the uni-app message object plus `conversation`, `seq`
// and `revoked`), and how one is shown.

import { locale, t } from './i18n.js';

/** How long after sending the server lets the sender revoke (limits.revoke_window_secs). */
export const REVOKE_WINDOW_MS = 300 * 1000;

/** The key of the direct conversation of users `a` and `b`. */
export function directKey(a, b) {
  return a < b ? `d:${a}:${b}` : `d:${b}:${a}`;
}

/** The key of group `id`'s conversation. */
export function groupKey(id) {
  return `g:${id}`;
}

/** A revoke notice: a timeline entry naming the message it revoked in data.otherData. */
export function isRevokeNotice(m) {
  return m.actionType === 'revoke' && !m.revoked;
}

/** The text of a message's content: a string, or the `{data, dataType, otherData}` wrapper
 *  (as an object or as JSON text) that uni-app clients send. */
export function contentText(data) {
  if (typeof data === 'string') {
    if (data.startsWith('{') && data.includes('"dataType"')) {
      try {
        return contentText(JSON.parse(data));
      } catch {
        return data;
      }
    }
    return data;
  }
  if (data && typeof data === 'object' && 'data' in data) return contentText(data.data);
  if (data === null || data === undefined) return '';
  return JSON.stringify(data);
}

/** The URL of an image message: the content itself, or its url/src field. */
export function imageUrl(data) {
  const text = typeof data === 'string' ? contentText(data) : null;
  const url = text ?? (data && (data.url || data.src || (typeof data.data === 'string' ? data.data : '')));
  if (typeof url !== 'string') return null;
  try {
    const parsed = new URL(url, location.href);
    return ['http:', 'https:', 'blob:'].includes(parsed.protocol) ? parsed.href : null;
  } catch {
    return null;
  }
}

/** A one-line preview of a message for the conversation list. */
export function preview(m, meId) {
  if (!m) return '';
  if (m.revoked || isRevokeNotice(m)) return revokedText(m, m.from_id === meId);
  const who = m.chatType === 'group' && m.type !== 'systemNotice' ? `${m.from_name}: ` : '';
  if (m.type === 'image') return who + t('msg.image');
  if (m.type === 'text' || m.type === 'systemNotice') return who + contentText(m.data);
  return `${who}[${m.type}]`;
}

/** The placeholder of a revoked message. */
function revokedText(m, mine) {
  return mine ? t('msg.youRevoked') : t('msg.revoked', { name: m.from_name });
}

const formats = new Map(); // locale → {clock, day}

function when(ms) {
  if (!formats.has(locale())) {
    formats.set(locale(), {
      clock: new Intl.DateTimeFormat(locale(), { hour: '2-digit', minute: '2-digit' }),
      day: new Intl.DateTimeFormat(locale(), { dateStyle: 'medium', timeStyle: 'short' }),
    });
  }
  const { clock, day } = formats.get(locale());
  const d = new Date(ms);
  const today = new Date().toDateString() === d.toDateString();
  return (today ? clock : day).format(d);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k.startsWith('data') || k.startsWith('aria') || k === 'role' || k === 'type' || k === 'datetime') {
      node.setAttribute(k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`), v);
    } else node[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}
export { el };

/**
 * The list item of message `m` (a stored message, or a pending one with `pending: true`).
 * `me` is my user id; `status` is `pending`, `failed`, `sent` or `read` for my own
 * messages; `error` says why a send failed.
 */
export function messageItem(m, me, { status, error, peerName } = {}) {
  const mine = m.from_id === me;
  const revoked = Boolean(m.revoked);
  const system = m.type === 'systemNotice' || revoked;
  const li = el('li', {
    class: `msg ${mine ? 'mine' : 'theirs'}${system ? ' system' : ''}`,
    dataTestid: 'message',
    dataKey: m.seq ? `s${m.seq}` : `c${m.cid}`,
    dataSeq: m.seq || undefined,
    dataId: m.id || undefined,
    dataCid: m.cid || undefined,
    dataMine: mine ? 'true' : 'false',
    dataRevoked: revoked ? 'true' : 'false',
    dataState: status || 'stored',
  });
  if (system) {
    const text = revoked ? revokedText(m, mine) : contentText(m.data);
    li.append(el('p', { class: 'notice' }, text));
    return li;
  }
  const body = el('div', { class: 'bubble' });
  if (!mine && m.chatType === 'group') body.append(el('span', { class: 'from' }, m.from_name));
  if (m.type === 'image') {
    const url = imageUrl(m.data);
    body.append(url
      ? el('a', { href: url, target: '_blank', rel: 'noopener noreferrer' },
        el('img', { src: url, alt: mine ? t('msg.imageFromYou') : t('msg.imageFrom', { name: m.from_name }), loading: 'lazy' }))
      : el('span', { class: 'text' }, t('msg.image')));
  } else if (m.type === 'text') {
    body.append(el('span', { class: 'text', dataTestid: 'message-text' }, contentText(m.data)));
  } else {
    body.append(el('span', { class: 'text' }, `[${m.type}] ${contentText(m.data)}`));
  }
  const meta = el('span', { class: 'meta' });
  meta.append(el('time', { datetime: new Date(m.create_time || Date.now()).toISOString() }, when(m.create_time || Date.now())));
  if (mine) {
    const label = {
      pending: t('msg.sending'),
      failed: t('msg.notSent'),
      sent: t('msg.sent'),
      read: peerName ? t('msg.readBy', { name: peerName }) : t('msg.read'),
    }[status] || '';
    if (label) meta.append(el('span', { class: 'state', dataTestid: 'message-state' }, ` · ${label}`));
  }
  body.append(meta);
  if (error) body.append(el('span', { class: 'error', role: 'alert' }, error));
  li.append(body);
  if (mine && status === 'failed') {
    li.append(el('button', { type: 'button', class: 'link', dataTestid: 'retry', dataAction: 'retry' }, t('msg.retry')));
  }
  if (mine && m.id && (status === 'sent' || status === 'read') && Date.now() - m.create_time < REVOKE_WINDOW_MS) {
    li.append(el('button', {
      type: 'button', class: 'link revoke', dataTestid: 'revoke', dataAction: 'revoke',
      ariaLabel: t('msg.revokeLabel', { text: contentText(m.data).slice(0, 40) }),
    }, t('msg.revoke')));
  }
  return li;
}
