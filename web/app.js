// The Parlor web client: log in or register, friends and friend requests, groups, direct
// and group chat over the WebSocket (REST when the socket is down), offline catch-up,
// unread counts, revoke and image messages. No framework: the DOM of index.html, updated
// in place.

import { Api, ApiError } from './api.js';
import { load as loadLocale, t } from './i18n.js';
import { Socket } from './socket.js';
import {
  directKey, groupKey, isRevokeNotice, messageItem, preview, el, REVOKE_WINDOW_MS,
} from './messages.js';

const SESSION_KEY = 'parlor.session';
/** How long a WebSocket send waits for its ack before it is sent again over REST. */
const ACK_TIMEOUT_MS = 6000;
const HISTORY_PAGE = 50;

const $ = (id) => document.getElementById(id);
/** The layout that shows one pane at a time (style.css). */
const narrow = window.matchMedia('(max-width: 720px)');
const api = new Api();

/** Everything the page knows; rebuilt from the server on every (re)connect. */
const state = {
  me: null, // {id, uuid, username, nickname}
  convs: new Map(), // key → conversation
  order: [], // conversation keys, newest activity first
  open: null, // the open conversation's key
  friends: [], // [{id, name, username}]
  groups: [], // [{id, name}]
  requests: [], // pending applications to me
  found: [], // the last search's users
  inflight: new Map(), // cid → {key, timer} of WebSocket sends waiting for their ack
  typing: new Map(), // conversation key → Map(user id → timer) of who is typing there
  typedAt: 0, // when my last typing note went out (ms)
};

/** Least time between two of my typing notes; the server forwards one a second anyway. */
const TYPING_EVERY_MS = 1000;

// ---------------------------------------------------------------------------------------
// Conversations

/** The conversation `key`, made when first seen. */
function conv(key, init = {}) {
  let c = state.convs.get(key);
  if (!c) {
    c = {
      key,
      chatType: key.startsWith('g:') ? 'group' : 'single',
      targetId: null,
      title: '',
      last: null,
      activity: 0,
      head: 0, // highest seq known
      read: 0, // my read position
      peerRead: 0, // the peer's read position (direct conversations)
      messages: new Map(), // seq → message
      pending: new Map(), // cid → {message, status, error}
      loaded: false,
      nextBefore: null,
    };
    state.convs.set(key, c);
  }
  Object.assign(c, init);
  return c;
}

function unread(c) {
  return c.key === state.open && document.visibilityState === 'visible' ? 0 : Math.max(0, c.head - c.read);
}

/** The conversation a message belongs to, with its title from the message when new. */
function convOfMessage(m) {
  const c = conv(m.conversation);
  if (!c.title) {
    if (m.chatType === 'group') {
      c.targetId = m.to_id;
      c.title = m.to_name;
    } else {
      const peerIsSender = m.from_id !== state.me.id;
      c.targetId = peerIsSender ? m.from_id : m.to_id;
      c.title = peerIsSender ? m.from_name : m.to_name;
    }
  }
  return c;
}

/** Takes in a stored message (pushed, acknowledged, or from history); `batch` leaves the
 *  list and the read position to the caller. */
function merge(m, batch = false) {
  if (!state.me || !m || !m.conversation || !m.seq) return;
  const c = convOfMessage(m);
  // A revoke (pushed or answered) is the revoked message; its notice is the timeline's head.
  const at = m.notice && m.notice.seq > m.seq ? m.notice.seq : m.seq;
  const fresh = at > c.head;
  c.head = Math.max(c.head, at);
  if (m.from_id === state.me.id) c.read = Math.max(c.read, at);
  if (m.create_time >= c.activity) {
    c.activity = m.create_time;
    c.last = m;
  }
  if (isRevokeNotice(m)) {
    const target = m.data && m.data.otherData;
    const old = target && c.messages.get(target.seq);
    if (old && !old.revoked) {
      c.messages.set(old.seq, { ...old, revoked: true, type: 'systemNotice', actionType: 'revoke' });
      if (c.key === state.open) showMessage(c, c.messages.get(old.seq));
    }
    if (c.last && target && c.last.seq === target.seq) c.last = { ...c.last, revoked: true };
  } else {
    const old = c.messages.get(m.seq);
    if (!old || (m.revoked && !old.revoked)) {
      c.messages.set(m.seq, m);
      if (m.cid && m.from_id === state.me.id && c.pending.has(m.cid)) {
        c.pending.delete(m.cid);
        if (c.key === state.open) removeItem(`c${m.cid}`);
      }
      if (c.key === state.open) showMessage(c, m);
    }
    if (m.type === 'systemNotice' && m.chatType === 'group') scheduleRefresh('groups');
  }
  if (batch) return;
  const typing = state.typing.get(c.key);
  if (typing && typing.has(m.from_id)) {
    // Their message is what they were typing.
    clearTimeout(typing.get(m.from_id));
    typing.delete(m.from_id);
    renderTyping();
  }
  if (fresh && c.key === state.open) markRead(c);
  if (!state.order.includes(c.key)) scheduleRefresh('conversations');
  renderConversations();
}

/** Moves my read position of the open conversation to its head, when the page is seen. */
function markRead(c) {
  if (document.visibilityState !== 'visible' || c.head === 0) return;
  const wasUnread = c.head > c.read;
  c.read = c.head;
  if (!wasUnread && c.sentRead === c.head) return;
  c.sentRead = c.head;
  const frame = { type: 'read', conversation: c.key, seq: c.head };
  if (!socket.send(frame)) api.post('/api/chat/read', { conversation: c.key, seq: c.head }).catch(() => {});
}

async function refreshConversations() {
  const data = await api.get('/api/chat/conversations?limit=200');
  const keys = [];
  for (const e of data.list) {
    const target = e.target || {};
    const c = conv(e.conversation, {
      chatType: e.chatType,
      targetId: target.id,
      title: e.chatType === 'group' ? target.name : (target.nickname || target.username || t('user', { id: target.id })),
    });
    if (e.last_message) {
      const head = e.last_message.seq;
      c.head = Math.max(c.head, head);
      c.read = Math.max(c.read, head - e.unread);
      if (e.last_message.create_time >= c.activity) {
        c.activity = e.last_message.create_time;
        c.last = e.last_message;
      }
    }
    keys.push(c.key);
  }
  state.order = keys;
  renderConversations();
  const open = state.open && state.convs.get(state.open);
  if (open) markRead(open);
}

// ---------------------------------------------------------------------------------------
// Rendering

/** The list item of each conversation, kept and updated in place (focus stays put). */
const convItems = new Map();

function convItem(key) {
  let item = convItems.get(key);
  if (!item) {
    const title = el('span', { class: 'title' });
    const badge = el('span', { class: 'badge', dataTestid: 'unread', ariaHidden: 'true' });
    const sub = el('span', { class: 'sub' });
    const unreadText = el('span', { class: 'sr-only' });
    const button = el('button', {
      type: 'button', class: 'entry', dataTestid: 'conversation', dataConv: key,
      onclick: () => openConversation(key),
    }, title, badge, sub, unreadText);
    item = { li: el('li', {}, button), button, title, badge, sub, unreadText };
    convItems.set(key, item);
  }
  return item;
}

function renderConversations() {
  if (!state.me) return;
  const list = $('conversations');
  const known = new Set(state.order);
  for (const c of state.convs.values()) if (c.head > 0 && !known.has(c.key)) state.order.push(c.key);
  state.order.sort((a, b) => state.convs.get(b).activity - state.convs.get(a).activity);
  state.order.forEach((key, i) => {
    const c = state.convs.get(key);
    const n = unread(c);
    const item = convItem(key);
    item.button.dataset.title = c.title || key;
    item.button.dataset.unread = String(n);
    if (key === state.open) item.button.setAttribute('aria-current', 'true');
    else item.button.removeAttribute('aria-current');
    item.title.textContent = c.title || key;
    item.badge.textContent = String(n);
    item.badge.hidden = n === 0;
    item.sub.textContent = preview(c.last, state.me.id);
    item.unreadText.textContent = n > 0 ? t('unread', { n }) : '';
    if (list.children[i] !== item.li) list.insertBefore(item.li, list.children[i] || null);
  });
  while (list.children.length > state.order.length) list.lastElementChild.remove();
  $('conversations-empty').hidden = state.order.length > 0;
  const total = state.order.reduce((sum, key) => sum + unread(state.convs.get(key)), 0);
  $('chats-badge').textContent = String(total);
  $('chats-badge').hidden = total === 0;
  document.title = total > 0 ? `(${total}) Parlor` : 'Parlor';
}

function statusOf(c, m) {
  if (m.from_id !== state.me.id) return undefined;
  return c.chatType === 'single' && c.peerRead >= m.seq ? 'read' : 'sent';
}

/** Puts the item of `m` in the open list, in seq order (pending sends last). */
function showMessage(c, m, pendingInfo) {
  const list = $('messages');
  const item = pendingInfo
    ? messageItem(m, state.me.id, pendingInfo)
    : messageItem(m, state.me.id, { status: statusOf(c, m), peerName: c.title });
  const key = item.dataset.key;
  const existing = list.querySelector(`[data-key="${key}"]`);
  const scroller = $('scroller');
  const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
  if (existing) {
    existing.replaceWith(item);
  } else if (pendingInfo) {
    list.append(item);
  } else {
    const after = [...list.children].find((li) => !li.dataset.seq || Number(li.dataset.seq) > m.seq);
    list.insertBefore(item, after || null);
  }
  if (atBottom || (m.from_id === state.me.id && !existing)) scroller.scrollTop = scroller.scrollHeight;
}

function removeItem(key) {
  const li = $('messages').querySelector(`[data-key="${key}"]`);
  if (li) li.remove();
}

function renderOpen() {
  const c = state.open && state.convs.get(state.open);
  $('chat-empty').hidden = Boolean(c);
  $('scroller').hidden = !c;
  $('composer').hidden = !c;
  $('invite-form').hidden = !c || c.chatType !== 'group';
  $('chat-title').textContent = c ? c.title : 'Parlor';
  renderTyping();
  $('main').classList.toggle('chat-open', Boolean(c));
  const list = $('messages');
  list.setAttribute('aria-busy', 'true');
  list.replaceChildren();
  if (c) {
    for (const seq of [...c.messages.keys()].sort((a, b) => a - b)) {
      const m = c.messages.get(seq);
      if (!isRevokeNotice(m)) showMessage(c, m);
    }
    for (const p of c.pending.values()) showMessage(c, p.message, p);
    $('older').hidden = !c.nextBefore;
    renderInvite(c);
  }
  list.setAttribute('aria-busy', 'false');
  $('scroller').scrollTop = $('scroller').scrollHeight;
}

function renderInvite(c) {
  if (c.chatType !== 'group') return;
  const options = state.friends.map((f) => el('option', { value: String(f.id) }, f.name));
  $('invite-select').replaceChildren(el('option', { value: '' }, t('invite.pick')), ...options);
}

async function openConversation(key, init) {
  const c = conv(key, init);
  state.open = key;
  renderOpen();
  renderConversations();
  $('composer-input').focus();
  if (!c.loaded) {
    try {
      await loadHistory(c);
    } catch (e) {
      toast(t('chat.history', { reason: e.message }));
    }
  }
  markRead(c);
  renderConversations();
}

async function loadHistory(c, before) {
  const q = new URLSearchParams({ limit: String(HISTORY_PAGE) });
  if (before) q.set('before', String(before));
  // A key is letters, digits and colons: safe in a path as it is.
  const page = await api.get(`/api/chat/history/conversation/${c.key}?${q}`);
  c.loaded = true;
  if (!before || !page.next_before || page.next_before < (c.nextBefore ?? Infinity)) c.nextBefore = page.next_before;
  c.head = Math.max(c.head, page.head || 0);
  for (const m of [...page.list].reverse()) merge(m, true);
  if (c.key === state.open) {
    $('older').hidden = !c.nextBefore;
    markRead(c);
  }
  renderConversations();
}

function openDirect(friend) {
  openConversation(directKey(state.me.id, friend.id), {
    chatType: 'single', targetId: friend.id, title: friend.name,
  });
}

function openGroup(group) {
  openConversation(groupKey(group.id), { chatType: 'group', targetId: group.id, title: group.name });
}

function closeConversation() {
  state.open = null;
  renderOpen();
  renderConversations();
}

// ---------------------------------------------------------------------------------------
// Sending

function newCid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

/** Sends a message to the open conversation: over the socket when it is up, else REST. */
function send(type, data) {
  const c = state.convs.get(state.open);
  if (!c) return;
  const cid = newCid();
  const message = {
    cid, from_id: state.me.id, from_name: state.me.nickname || state.me.username,
    chatType: c.chatType, type, data, create_time: Date.now(), conversation: c.key,
  };
  const p = { message, status: 'pending', to: c.targetId };
  c.pending.set(cid, p);
  if (c.key === state.open) showMessage(c, message, p);
  deliver(c, p);
}

function deliver(c, p) {
  const { cid } = p.message;
  const frame = {
    type: 'send', cid, to: p.to, chatType: c.chatType, msgType: p.message.type, data: p.message.data,
  };
  if (socket.send(frame)) {
    const timer = setTimeout(() => viaRest(c, p), ACK_TIMEOUT_MS);
    state.inflight.set(cid, { key: c.key, timer });
  } else {
    viaRest(c, p);
  }
}

/** The REST fallback; the same `cid` makes a repeat of a send that did arrive harmless. */
async function viaRest(c, p) {
  const { cid } = p.message;
  const waiting = state.inflight.get(cid);
  if (waiting) clearTimeout(waiting.timer);
  state.inflight.delete(cid);
  if (!c.pending.has(cid)) return;
  try {
    const stored = await api.post('/api/chat/socket/sendmessage', {
      sendto_id: p.to, chatType: c.chatType, type: p.message.type, data: p.message.data, cid,
    });
    merge(stored);
  } catch (e) {
    failed(c, cid, e.message);
  }
}

function failed(c, cid, reason) {
  const p = c.pending.get(cid);
  if (!p) return;
  p.status = 'failed';
  p.error = reason;
  if (c.key === state.open) showMessage(c, p.message, p);
}

function onAck(frame) {
  const waiting = state.inflight.get(frame.cid);
  if (waiting) {
    clearTimeout(waiting.timer);
    state.inflight.delete(frame.cid);
  }
  merge(frame.data);
}

function onError(frame) {
  const waiting = frame.cid && state.inflight.get(frame.cid);
  if (waiting) {
    clearTimeout(waiting.timer);
    state.inflight.delete(frame.cid);
    failed(state.convs.get(waiting.key), frame.cid, frame.msg);
  } else if (frame.code !== 'bad_json') {
    toast(frame.msg);
  }
}

/** The socket went down: what waits for an ack goes over REST now. */
function resendInflight() {
  for (const [cid, { key }] of [...state.inflight]) {
    const c = state.convs.get(key);
    const p = c && c.pending.get(cid);
    if (p) viaRest(c, p);
  }
}

async function revoke(c, id) {
  try {
    const placeholder = socket.ready
      ? await revokeOverSocket(id)
      : await api.post('/api/chat/revokeMessage', { id });
    merge(placeholder);
  } catch (e) {
    toast(t('revoke.failed', { reason: e.message }));
  }
}

const revokes = new Map(); // cid → {resolve, reject, timer}

function revokeOverSocket(id) {
  return new Promise((resolve, reject) => {
    const cid = newCid();
    const timer = setTimeout(() => {
      revokes.delete(cid);
      api.post('/api/chat/revokeMessage', { id }).then(resolve, reject);
    }, ACK_TIMEOUT_MS);
    revokes.set(cid, { resolve, reject, timer });
    socket.send({ type: 'revoke', cid, id });
  });
}

function settleRevoke(frame) {
  const r = revokes.get(frame.cid);
  if (!r) return false;
  clearTimeout(r.timer);
  revokes.delete(frame.cid);
  if (frame.type === 'ack') r.resolve(frame.data);
  else r.reject(new ApiError(400, frame.msg));
  return true;
}

async function sendImage(file) {
  if (!file) return;
  if (!file.type.startsWith('image/')) {
    toast(t('image.choose'));
    return;
  }
  try {
    const url = await api.uploadImage(file);
    send('image', url);
  } catch (e) {
    toast(t('image.failed', { reason: e.message }));
  }
}

// ---------------------------------------------------------------------------------------
// The socket

const socket = new Socket({
  onState(s, retryMs) {
    const status = $('conn-status');
    status.dataset.state = s;
    status.textContent = s === 'offline' && retryMs
      ? t('status.retrying', { s: Math.ceil(retryMs / 1000) })
      : t(`status.${s}`);
  },
  onDown(event) {
    resendInflight();
    for (const [cid, r] of [...revokes]) {
      clearTimeout(r.timer);
      revokes.delete(cid);
      r.reject(new ApiError(0, t('net.lost')));
    }
    if (event.code === 1008 && event.reason === 'logged out') signOut(t('auth.loggedOut'));
    // Whether the token still works: a refused one ends the session (see onUnauthorized).
    else api.get('/api/chat/conversations?limit=1').catch(() => {});
  },
  onFrame(frame) {
    switch (frame.type) {
      case 'connected':
        catchUp();
        break;
      case 'singleChat':
        merge(frame.data);
        break;
      case 'systemNotice':
        if (frame.data && frame.data.conversation) merge(frame.data);
        else social(frame.data || {});
        break;
      case 'ack':
        if (!settleRevoke(frame)) onAck(frame);
        break;
      case 'error':
        if (!settleRevoke(frame)) onError(frame);
        break;
      case 'read':
        onReadReceipt(frame.data);
        break;
      case 'typing':
        onTyping(frame.data);
        break;
      default:
        break;
    }
  },
});

function onReadReceipt(r) {
  if (!r || r.user_id === state.me.id) return;
  const c = state.convs.get(r.conversation);
  if (!c || c.chatType !== 'single' || r.seq <= c.peerRead) return;
  c.peerRead = r.seq;
  if (c.key !== state.open) return;
  for (const m of c.messages.values()) {
    if (m.from_id === state.me.id && m.seq <= r.seq && !m.revoked) showMessage(c, m);
  }
}

// ---------------------------------------------------------------------------------------
// Typing notes: shown until their expiresIn passes on this clock, or a stop

function onTyping(n) {
  if (!n || !state.me || n.from === state.me.id) return;
  let who = state.typing.get(n.conversation);
  if (!who) {
    who = new Map();
    state.typing.set(n.conversation, who);
  }
  clearTimeout(who.get(n.from));
  who.delete(n.from);
  if (n.state === 'start') {
    who.set(n.from, setTimeout(() => {
      who.delete(n.from);
      renderTyping();
    }, n.expiresIn || 5000));
  }
  renderTyping();
}

function renderTyping() {
  const line = $('chat-typing');
  const who = state.open && state.typing.get(state.open);
  const ids = who ? [...who.keys()] : [];
  line.hidden = ids.length === 0;
  if (!ids.length) return;
  const c = state.convs.get(state.open);
  const name = (id) => {
    const f = state.friends.find((x) => x.id === id);
    if (f) return f.name;
    return c && c.chatType === 'single' ? c.title : t('user', { id });
  };
  line.textContent = t('typing', { who: ids.map(name).join(', ') });
}

/** A key press in the composer: a typing note, at most one a second. */
function noteTyping(stop = false) {
  const c = state.open && state.convs.get(state.open);
  if (!c || !c.targetId) return;
  const now = Date.now();
  if (stop) {
    if (!state.typedAt) return;
    state.typedAt = 0;
  } else {
    if (now - state.typedAt < TYPING_EVERY_MS) return;
    state.typedAt = now;
  }
  socket.send({ type: 'typing', to: c.targetId, chatType: c.chatType, state: stop ? 'stop' : 'start' });
}

/** Social notices are not stored: they say which list to read again. */
function social(n) {
  const who = n.from_name || t('someone');
  switch (n.actionType) {
    case 'applyFriend':
      toast(t('notice.applyFriend', { who }));
      refreshRequests();
      break;
    case 'agreeFriend':
      toast(t('notice.agreeFriend', { who }));
      refreshFriends();
      break;
    case 'addFriend':
      toast(t('notice.addFriend', { who }));
      refreshFriends();
      break;
    case 'groupJoinRequest':
      toast(t('notice.groupJoinRequest', { who, group: n.group_name }));
      break;
    default:
      break;
  }
}

/** After every (re)connect: the lists again, and the history of the open conversation. */
async function catchUp() {
  try {
    await Promise.all([refreshConversations(), refreshFriends(), refreshRequests(), refreshGroups()]);
    const c = state.open && state.convs.get(state.open);
    if (c && c.loaded) await loadHistory(c);
  } catch (e) {
    if (e.status !== 401) toast(e.message);
  }
}

const refreshTimers = {};
function scheduleRefresh(what) {
  clearTimeout(refreshTimers[what]);
  refreshTimers[what] = setTimeout(() => {
    const run = { conversations: refreshConversations, groups: refreshGroups }[what];
    run().catch(() => {});
  }, 250);
}

// ---------------------------------------------------------------------------------------
// Contacts and groups

async function refreshFriends() {
  const data = await api.get('/api/chat/goodfriendlist/1?limit=2000');
  state.friends = data.rows.newList.flatMap((g) => g.list).map((f) => ({
    id: f.friend_id, name: f.name, username: f.username,
  }));
  const items = state.friends.map((f) => el('li', {},
    el('button', {
      type: 'button', class: 'entry', dataTestid: 'friend', dataUserId: String(f.id), dataUsername: f.username,
      onclick: () => openDirect(f),
    }, el('span', { class: 'title' }, f.name), el('span', { class: 'sub' }, `@${f.username}`))));
  $('friends').replaceChildren(...items);
  $('friends-empty').hidden = items.length > 0;
  const checks = state.friends.map((f) => el('label', {},
    el('input', { type: 'checkbox', name: 'member', value: String(f.id), dataTestid: 'group-member' }), f.name));
  $('group-members').replaceChildren(...checks);
  $('group-members-empty').hidden = checks.length > 0;
  $('group-create').disabled = checks.length === 0;
  renderSearch();
  const open = state.open && state.convs.get(state.open);
  if (open) renderInvite(open);
}

async function refreshRequests() {
  const data = await api.get('/api/chat/listapplyfriend/1?limit=100');
  state.requests = data.alldata.filter((a) => a.status === 'pending');
  const items = state.requests.map((a) => {
    const u = a.user || {};
    const name = u.nickname || u.username || t('user', { id: a.user_id });
    const answer = (status) => async (event) => {
      const button = event.currentTarget;
      button.disabled = true;
      try {
        await api.post(`/api/chat/handleapply/${a.id}`, { status });
        toast(t(status === 'agree' ? 'request.agreed' : 'request.declined', { name }));
        await Promise.all([refreshRequests(), refreshFriends()]);
      } catch (e) {
        toast(e.message);
        button.disabled = false;
      }
    };
    return el('li', { class: 'row', dataTestid: 'request', dataUsername: u.username },
      el('span', { class: 'who' }, name, a.nickname ? el('span', { class: 'note' }, a.nickname) : null),
      el('button', { type: 'button', dataTestid: 'accept-request', onclick: answer('agree'), ariaLabel: t('request.acceptName', { name }) }, t('request.accept')),
      el('button', { type: 'button', class: 'secondary', dataTestid: 'decline-request', onclick: answer('refuse'), ariaLabel: t('request.declineName', { name }) }, t('request.decline')));
  });
  $('requests').replaceChildren(...items);
  $('requests-title').hidden = items.length === 0;
  $('requests-badge').textContent = String(items.length);
  $('requests-badge').hidden = items.length === 0;
}

async function refreshGroups() {
  const list = await api.get('/api/chat/grouplist/1?limit=200');
  state.groups = list.map((g) => ({ id: g.id, name: g.name }));
  const items = state.groups.map((g) => el('li', {},
    el('button', {
      type: 'button', class: 'entry', dataTestid: 'group', dataGroupId: String(g.id), onclick: () => openGroup(g),
    }, el('span', { class: 'title' }, g.name))));
  $('groups').replaceChildren(...items);
  for (const g of state.groups) {
    const c = state.convs.get(groupKey(g.id));
    if (c) c.title = g.name;
  }
}

async function search(keyword) {
  state.found = await api.post('/api/chat/searchUser', { keyword });
  renderSearch();
  if (state.found.length === 0) toast(t('search.none', { keyword }));
}

/** The search results; a user who became a friend gets a Message button. */
function renderSearch() {
  const friends = new Set(state.friends.map((f) => f.id));
  const items = state.found.map((u) => {
    const name = u.nickname || u.username;
    const action = friends.has(u.id)
      ? el('button', { type: 'button', class: 'secondary', onclick: () => openDirect({ id: u.id, name }) }, t('friend.message'))
      : el('button', {
        type: 'button', dataTestid: 'add-friend', ariaLabel: t('friend.addName', { name }),
        onclick: async (event) => {
          const button = event.currentTarget;
          button.disabled = true;
          try {
            await api.post('/api/chat/applyfriend', { friend_id: u.id });
            button.textContent = t('friend.requested');
            toast(t('friend.sent', { name }));
          } catch (e) {
            button.disabled = false;
            toast(e.message);
          }
        },
      }, t('friend.add'));
    return el('li', { class: 'row', dataTestid: 'search-result', dataUsername: u.username },
      el('span', { class: 'who' }, name, el('span', { class: 'note' }, `@${u.username}`)), action);
  });
  $('search-results').replaceChildren(...items);
}

// ---------------------------------------------------------------------------------------
// Session

function saveSession(user) {
  const me = { id: user.id, uuid: user.uuid, username: user.username, nickname: user.nickname };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify({ token: user.token, me }));
  return { token: user.token, me };
}

function startSession({ token, me }) {
  state.me = me;
  api.token = token;
  $('auth').hidden = true;
  $('main').hidden = false;
  $('me-name').textContent = me.nickname || me.username;
  socket.start(token);
}

function signOut(message) {
  socket.stop();
  sessionStorage.removeItem(SESSION_KEY);
  api.token = null;
  state.me = null;
  state.convs.clear();
  state.order = [];
  convItems.clear();
  state.found = [];
  state.friends = [];
  state.groups = [];
  state.requests = [];
  for (const id of ['search-results', 'friends', 'requests', 'groups', 'group-members']) $(id).replaceChildren();
  state.open = null;
  renderOpen();
  $('conversations').replaceChildren();
  state.inflight.forEach(({ timer }) => clearTimeout(timer));
  state.inflight.clear();
  $('main').hidden = true;
  $('auth').hidden = false;
  $('auth-error').textContent = message || '';
  $('auth-username').focus();
}

let toastTimer = null;
function toast(text) {
  clearTimeout(toastTimer);
  $('toast').textContent = text;
  toastTimer = setTimeout(() => { $('toast').textContent = ''; }, 4000);
}

function selectTab(name) {
  for (const tab of ['chats', 'contacts', 'groups']) {
    const on = tab === name;
    $(`tab-${tab}`).setAttribute('aria-selected', String(on));
    $(`tab-${tab}`).tabIndex = on ? 0 : -1;
    $(`panel-${tab}`).hidden = !on;
  }
}

function wire() {
  $('auth-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const register = event.submitter && event.submitter.value === 'register';
    const username = $('auth-username').value.trim();
    const password = $('auth-password').value;
    $('auth-error').textContent = '';
    for (const b of event.currentTarget.querySelectorAll('button')) b.disabled = true;
    try {
      const user = await api.post(register ? '/api/regChat' : '/api/loginChat', { username, password });
      $('auth-password').value = '';
      startSession(saveSession(user));
    } catch (e) {
      $('auth-error').textContent = e.message;
    } finally {
      for (const b of $('auth-form').querySelectorAll('button')) b.disabled = false;
    }
  });
  $('logout').addEventListener('click', async () => {
    await api.post('/api/chat/logout').catch(() => {});
    signOut();
  });
  api.onUnauthorized = (reason) => signOut(t('auth.again', { reason }));

  const tabs = ['chats', 'contacts', 'groups'];
  for (const tab of tabs) {
    $(`tab-${tab}`).addEventListener('click', () => selectTab(tab));
    $(`tab-${tab}`).addEventListener('keydown', (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length];
      selectTab(next);
      $(`tab-${next}`).focus();
    });
  }

  $('search-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const keyword = $('search-input').value.trim();
    if (keyword) search(keyword).catch((e) => toast(e.message));
  });

  $('group-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const ids = [...$('group-members').querySelectorAll('input:checked')].map((i) => Number(i.value));
    if (ids.length === 0) {
      toast(t('group.chooseFriend'));
      return;
    }
    try {
      await api.post('/api/chat/group/create', { userIds: ids });
      for (const i of $('group-members').querySelectorAll('input')) i.checked = false;
      toast(t('group.created'));
      await refreshGroups();
    } catch (e) {
      toast(e.message);
    }
  });

  $('invite-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const c = state.convs.get(state.open);
    const userId = Number($('invite-select').value);
    if (!c || !userId) return;
    try {
      const answer = await api.post('/api/chat/groupInviteUser', { group_id: c.targetId, user_id: userId });
      toast(typeof answer === 'string' ? answer : t('invite.done'));
    } catch (e) {
      toast(e.message);
    }
  });

  $('composer').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = $('composer-input');
    const text = input.value;
    if (!text.trim()) return;
    input.value = '';
    noteTyping(true);
    send('text', text);
  });
  $('composer-input').addEventListener('input', () => noteTyping($('composer-input').value === ''));
  $('composer-input').addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $('composer').requestSubmit();
    }
  });
  $('image-input').addEventListener('change', (event) => {
    sendImage(event.target.files[0]);
    event.target.value = '';
  });

  $('messages').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-action]');
    if (!button) return;
    const li = button.closest('li');
    const c = state.convs.get(state.open);
    if (!c) return;
    if (button.dataset.action === 'revoke' && li.dataset.id) revoke(c, li.dataset.id);
    if (button.dataset.action === 'retry' && li.dataset.cid) {
      const p = c.pending.get(li.dataset.cid);
      if (p) {
        p.status = 'pending';
        p.error = undefined;
        showMessage(c, p.message, p);
        deliver(c, p);
      }
    }
  });
  $('older').addEventListener('click', () => {
    const c = state.convs.get(state.open);
    if (c && c.nextBefore) loadHistory(c, c.nextBefore).catch((e) => toast(e.message));
  });
  $('back').addEventListener('click', closeConversation);
  $('toast').addEventListener('click', () => { $('toast').textContent = ''; });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && state.open && narrow.matches) closeConversation();
  });

  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState !== 'visible' || !state.me) return;
    socket.now();
    const c = state.open && state.convs.get(state.open);
    if (c) markRead(c);
    renderConversations();
  });
  window.addEventListener('online', () => socket.now());

  // Revoke buttons disappear when the window has passed.
  setInterval(() => {
    const now = Date.now();
    for (const b of $('messages').querySelectorAll('button[data-action="revoke"]')) {
      const c = state.convs.get(state.open);
      const m = c && c.messages.get(Number(b.closest('li').dataset.seq));
      if (!m || now - m.create_time >= REVOKE_WINDOW_MS) b.remove();
    }
  }, 15000);
}

await loadLocale();
wire();
const saved = (() => {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION_KEY));
  } catch {
    return null;
  }
})();
if (saved && saved.token && saved.me) startSession(saved);
else {
  $('auth').hidden = false;
  $('auth-username').focus();
}
