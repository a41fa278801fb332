// The client's texts in the server's locale (`server.locale`: zh-CN or en), the language
// the server writes its notices in. index.html carries the English texts; the elements
// with data-i18n (text), data-i18n-placeholder, data-i18n-title or data-i18n-aria-label
// name the key of theirs.

const TEXTS = {
  en: {
    'auth.intro': 'Log in, or register a new account. Each browser tab keeps its own login.',
    'auth.username': 'Username',
    'auth.usernameHint': '4 to 20 letters, digits or _',
    'auth.password': 'Password',
    'auth.passwordHint': '6 to 20 characters',
    'auth.login': 'Log in',
    'auth.register': 'Register',
    'auth.again': 'Please log in again ({reason}).',
    'auth.loggedOut': 'You were logged out.',
    sidebar: 'Conversations and contacts',
    logout: 'Log out',
    'status.offline': 'offline',
    'status.connecting': 'connecting',
    'status.online': 'online',
    'status.retrying': 'offline, retrying in {s} s',
    tabs: 'Sections',
    'tab.chats': 'Chats',
    'tab.contacts': 'Contacts',
    'tab.groups': 'Groups',
    conversations: 'Conversations',
    'conversations.empty': 'No conversations yet. Find people under Contacts.',
    unread: ', {n} unread',
    user: 'user {id}',
    'search.label': 'Search users',
    'search.button': 'Search',
    'search.results': 'Search results',
    'search.none': 'Nobody matches “{keyword}”',
    requests: 'Friend requests',
    'request.accept': 'Accept',
    'request.acceptName': 'Accept {name}',
    'request.decline': 'Decline',
    'request.declineName': 'Decline {name}',
    'request.agreed': 'You and {name} are friends now',
    'request.declined': 'Request from {name} declined',
    friends: 'Friends',
    'friends.empty': 'No friends yet: search for someone and send a request.',
    'friend.add': 'Add friend',
    'friend.addName': 'Add {name} as a friend',
    'friend.requested': 'Requested',
    'friend.sent': 'Friend request sent to {name}',
    'friend.message': 'Message',
    someone: 'Someone',
    'notice.applyFriend': '{who} wants to be your friend',
    'notice.agreeFriend': '{who} accepted your friend request',
    'notice.addFriend': '{who} added you as a friend',
    'notice.groupJoinRequest': '{who} asks to join {group}',
    'group.with': 'New group with',
    'group.membersEmpty': 'Groups are made of friends: add some first.',
    'group.create': 'Create group',
    'group.chooseFriend': 'Choose at least one friend',
    'group.created': 'Group created',
    'group.mine': 'Your groups',
    groups: 'Groups',
    back: 'Back to the list',
    'invite.label': 'Invite a friend to this group',
    'invite.pick': 'Invite a friend…',
    'invite.button': 'Invite',
    'invite.done': 'Invited',
    'chat.empty': 'Choose a conversation, or a friend to talk to.',
    'chat.older': 'Load older messages',
    'chat.history': 'Could not load the history: {reason}',
    messages: 'Messages',
    typing: '{who} is typing…',
    'composer.label': 'Message',
    'composer.placeholder': 'Write a message',
    'composer.hint': 'Enter sends, Shift+Enter starts a new line.',
    'composer.image': 'Image',
    'composer.imageTitle': 'Send an image',
    'composer.send': 'Send',
    'image.choose': 'Choose an image file',
    'image.failed': 'Upload failed: {reason}',
    'image.noUrl': 'the upload answered no URL',
    'revoke.failed': 'Could not revoke: {reason}',
    'net.unreachable': 'the server cannot be reached',
    'net.lost': 'the connection was lost',
    'msg.youRevoked': 'You recalled a message',
    'msg.revoked': '{name} recalled a message',
    'msg.image': '[image]',
    'msg.imageFromYou': 'Image from you',
    'msg.imageFrom': 'Image from {name}',
    'msg.sending': 'sending…',
    'msg.notSent': 'not sent',
    'msg.sent': 'sent',
    'msg.read': 'read',
    'msg.readBy': 'read by {name}',
    'msg.retry': 'Retry',
    'msg.revoke': 'Revoke',
    'msg.revokeLabel': 'Revoke your message “{text}”',
  },
  'zh-CN': {
    'auth.intro': '登录，或注册新账号。每个浏览器标签页各自保持登录。',
    'auth.username': '用户名',
    'auth.usernameHint': '4 到 20 个字母、数字或 _',
    'auth.password': '密码',
    'auth.passwordHint': '6 到 20 个字符',
    'auth.login': '登录',
    'auth.register': '注册',
    'auth.again': '请重新登录（{reason}）。',
    'auth.loggedOut': '你已退出登录。',
    sidebar: '会话与联系人',
    logout: '退出登录',
    'status.offline': '离线',
    'status.connecting': '连接中',
    'status.online': '在线',
    'status.retrying': '离线，{s} 秒后重试',
    tabs: '分区',
    'tab.chats': '会话',
    'tab.contacts': '联系人',
    'tab.groups': '群聊',
    conversations: '会话列表',
    'conversations.empty': '还没有会话。去“联系人”里找人聊天吧。',
    unread: '，{n} 条未读',
    user: '用户 {id}',
    'search.label': '搜索用户',
    'search.button': '搜索',
    'search.results': '搜索结果',
    'search.none': '没有与“{keyword}”匹配的用户',
    requests: '好友申请',
    'request.accept': '同意',
    'request.acceptName': '同意{name}',
    'request.decline': '拒绝',
    'request.declineName': '拒绝{name}',
    'request.agreed': '你和{name}已成为好友',
    'request.declined': '已拒绝{name}的好友申请',
    friends: '好友',
    'friends.empty': '还没有好友：搜索用户并发送好友申请。',
    'friend.add': '加好友',
    'friend.addName': '添加{name}为好友',
    'friend.requested': '已申请',
    'friend.sent': '已向{name}发送好友申请',
    'friend.message': '发消息',
    someone: '有人',
    'notice.applyFriend': '{who}请求添加你为好友',
    'notice.agreeFriend': '{who}通过了你的好友申请',
    'notice.addFriend': '{who}已添加你为好友',
    'notice.groupJoinRequest': '{who}申请加入{group}',
    'group.with': '选择群成员',
    'group.membersEmpty': '群聊由好友组成：请先添加好友。',
    'group.create': '创建群聊',
    'group.chooseFriend': '请至少选择一位好友',
    'group.created': '群聊已创建',
    'group.mine': '我的群聊',
    groups: '群聊',
    back: '返回列表',
    'invite.label': '邀请好友加入本群',
    'invite.pick': '邀请好友…',
    'invite.button': '邀请',
    'invite.done': '已邀请',
    'chat.empty': '选择一个会话，或选择一位好友开始聊天。',
    'chat.older': '加载更早的消息',
    'chat.history': '无法加载历史消息：{reason}',
    messages: '消息',
    typing: '{who} 正在输入…',
    'composer.label': '消息',
    'composer.placeholder': '输入消息',
    'composer.hint': '按 Enter 发送，Shift+Enter 换行。',
    'composer.image': '图片',
    'composer.imageTitle': '发送图片',
    'composer.send': '发送',
    'image.choose': '请选择图片文件',
    'image.failed': '上传失败：{reason}',
    'image.noUrl': '上传未返回地址',
    'revoke.failed': '撤回失败：{reason}',
    'net.unreachable': '无法连接服务器',
    'net.lost': '连接已断开',
    'msg.youRevoked': '你撤回了一条消息',
    'msg.revoked': '{name}撤回了一条消息',
    'msg.image': '[图片]',
    'msg.imageFromYou': '你发送的图片',
    'msg.imageFrom': '{name}发送的图片',
    'msg.sending': '发送中…',
    'msg.notSent': '未发送',
    'msg.sent': '已发送',
    'msg.read': '已读',
    'msg.readBy': '{name}已读',
    'msg.retry': '重试',
    'msg.revoke': '撤回',
    'msg.revokeLabel': '撤回你的消息“{text}”',
  },
};

let current = 'en';

/** The locale in force: `zh-CN` or `en`. */
export function locale() {
  return current;
}

/** The text of `key` in the current locale, `{name}` placeholders filled from `params`. */
export function t(key, params = {}) {
  const text = TEXTS[current][key] ?? TEXTS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? ''));
}

/** Puts the texts of the current locale into `root`'s marked elements. */
export function apply(root = document) {
  const attributes = { i18nPlaceholder: 'placeholder', i18nTitle: 'title', i18nAriaLabel: 'aria-label' };
  for (const node of root.querySelectorAll('[data-i18n], [data-i18n-placeholder], [data-i18n-title], [data-i18n-aria-label]')) {
    if (node.dataset.i18n) node.textContent = t(node.dataset.i18n);
    for (const [key, attribute] of Object.entries(attributes)) {
      if (node.dataset[key]) node.setAttribute(attribute, t(node.dataset[key]));
    }
  }
}

/** Takes the server's locale (English when it cannot be read), marks the page with it and
 *  applies its texts. */
export async function load() {
  try {
    const resp = await fetch('/web/locale.json', { cache: 'no-store' });
    const { locale: wanted } = await resp.json();
    if (Object.hasOwn(TEXTS, wanted)) current = wanted;
  } catch {
    // the page's own English texts stay
  }
  document.documentElement.lang = current;
  apply(document);
}
