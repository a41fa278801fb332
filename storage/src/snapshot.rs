//! [`Snapshot`]: the typed view of one read transaction. Readers run it off the actor
//! threads (`spawn_blocking`); it sees one consistent state while the Writer goes on.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use redb::{ReadTransaction, ReadableTable};

use crate::codec::decode;
use crate::records::{
    ApplyRecord, ApplyStatus, ConvState, Cursor, FileRecord, FriendRecord, GateRecord, GroupRecord,
    JoinRequest, MemberRecord, MessageRecord, OutboxEvent, Presence, SettingRecord, UserRecord,
    WebhookRecord,
};
use crate::tables::*;
use crate::Result;

/// One read transaction; see the module doc.
pub struct Snapshot {
    pub(crate) txn: ReadTransaction,
}

/// A page of a conversation's history, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    pub messages: Vec<MessageRecord>,
    /// Pass as `before` to get the next (older) page; `None` when this page reaches seq 1.
    pub next_before: Option<u64>,
    /// The conversation's head when the page was read.
    pub head: u64,
}

/// What the core needs in memory at start: every cursor that is behind its conversation's
/// head (the offline queues) and the revoked tokens still valid.
#[derive(Debug, Default)]
pub struct StartupState {
    /// `(tenant, user, conversation, delivered)` for each cursor behind its head.
    pub pending: Vec<(String, u64, String, u64)>,
    /// `(jti, expiry seconds)`.
    pub revoked_tokens: Vec<(String, u64)>,
    /// Admin nonces remembered: `(nonce, until ms)`.
    pub admin_nonces: Vec<(String, u64)>,
    /// The users' gates: `(tenant, user, gate)`.
    pub gates: Vec<(String, u64, GateRecord)>,
}

impl Snapshot {
    pub(crate) fn new(txn: ReadTransaction) -> Self {
        Snapshot { txn }
    }

    /// A user by id.
    pub fn user(&self, tenant: &str, id: u64) -> Result<Option<UserRecord>> {
        let table = self.txn.open_table(USERS)?;
        let value = table.get((tenant, id))?;
        value.map(|v| decode(v.value())).transpose()
    }

    /// A user by username.
    pub fn user_by_username(&self, tenant: &str, username: &str) -> Result<Option<UserRecord>> {
        let id = self
            .txn
            .open_table(USERNAMES)?
            .get((tenant, username))?
            .map(|v| v.value());
        id.map_or(Ok(None), |id| self.user(tenant, id))
    }

    /// A user by uuid.
    pub fn user_by_uuid(&self, tenant: &str, uuid: &str) -> Result<Option<UserRecord>> {
        let id = self
            .txn
            .open_table(USER_UUIDS)?
            .get((tenant, uuid))?
            .map(|v| v.value());
        id.map_or(Ok(None), |id| self.user(tenant, id))
    }

    /// The visitor bound to a device.
    pub fn user_by_device(&self, tenant: &str, device: &str) -> Result<Option<UserRecord>> {
        let id = self
            .txn
            .open_table(DEVICES)?
            .get((tenant, device))?
            .map(|v| v.value());
        id.map_or(Ok(None), |id| self.user(tenant, id))
    }

    /// Users of a tenant whose username or nickname contains `keyword` (case-insensitive),
    /// at most `limit`, in id order.
    pub fn search_users(&self, tenant: &str, keyword: &str, limit: usize) -> Result<Vec<UserRecord>> {
        let needle = keyword.to_lowercase();
        let table = self.txn.open_table(USERS)?;
        let mut out = Vec::new();
        for entry in table.range((tenant, 0)..=(tenant, u64::MAX))? {
            let user: UserRecord = decode(entry?.1.value())?;
            if user.username.to_lowercase().contains(&needle)
                || user.nickname.to_lowercase().contains(&needle)
            {
                out.push(user);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// A page of a tenant's users in id order: those whose username or nickname contains
    /// `keyword` (case-insensitive; every user when `None`), skipping `offset`, at most
    /// `limit`; with the number of users that match.
    pub fn users_page(
        &self,
        tenant: &str,
        keyword: Option<&str>,
        offset: usize,
        limit: usize,
    ) -> Result<(usize, Vec<UserRecord>)> {
        let needle = keyword.map(str::to_lowercase);
        let table = self.txn.open_table(USERS)?;
        let (mut total, mut out) = (0, Vec::new());
        for entry in table.range((tenant, 0)..=(tenant, u64::MAX))? {
            let value = entry?.1;
            let wanted = (offset..offset.saturating_add(limit)).contains(&total);
            let user = match &needle {
                None if !wanted => None,
                _ => Some(decode::<UserRecord>(value.value())?),
            };
            if let (Some(needle), Some(u)) = (&needle, &user) {
                if !u.username.to_lowercase().contains(needle) && !u.nickname.to_lowercase().contains(needle)
                {
                    continue;
                }
            }
            if wanted {
                out.extend(user);
            }
            total += 1;
        }
        Ok((total, out))
    }

    /// What user `id`'s tokens must pass (the default when nothing was ever revoked).
    pub fn gate(&self, tenant: &str, id: u64) -> Result<GateRecord> {
        let table = self.txn.open_table(USER_GATES)?;
        let value = table.get((tenant, id))?;
        Ok(value.map(|v| decode(v.value())).transpose()?.unwrap_or_default())
    }

    /// The positions `(conversation, seq)` of the messages `user` sent in `tenant` (system
    /// notices left out), in every conversation: a scan of the tenant's timelines.
    pub fn sent_by(&self, tenant: &str, user: u64) -> Result<Vec<(String, u64)>> {
        let table = self.txn.open_table(MESSAGES)?;
        let mut out = Vec::new();
        for entry in table.range((tenant, "", 0)..)? {
            let (k, v) = entry?;
            let (t, conv, seq) = k.value();
            if t != tenant {
                break;
            }
            let m: MessageRecord = decode(v.value())?;
            if m.from_id == user && m.action.is_none() {
                out.push((conv.to_owned(), seq));
            }
        }
        Ok(out)
    }

    /// The groups in which `user` has a pending join request.
    pub fn join_requests_by(&self, tenant: &str, user: u64) -> Result<Vec<u64>> {
        let table = self.txn.open_table(JOIN_REQUESTS)?;
        let mut out = Vec::new();
        for entry in table.range((tenant, 0, 0)..=(tenant, u64::MAX, u64::MAX))? {
            let (_, group, who) = entry?.0.value();
            if who == user {
                out.push(group);
            }
        }
        Ok(out)
    }

    /// A message by its position.
    pub fn message(&self, tenant: &str, conv: &str, seq: u64) -> Result<Option<MessageRecord>> {
        let table = self.txn.open_table(MESSAGES)?;
        let value = table.get((tenant, conv, seq))?;
        value.map(|v| decode(v.value())).transpose()
    }

    /// A message by its id.
    pub fn message_by_id(&self, tenant: &str, id: &str) -> Result<Option<MessageRecord>> {
        let at = self.txn.open_table(MESSAGE_IDS)?.get((tenant, id))?.map(|v| {
            let (conv, seq) = v.value();
            (conv.to_owned(), seq)
        });
        at.map_or(Ok(None), |(conv, seq)| self.message(tenant, &conv, seq))
    }

    /// The head seq of a conversation: its timeline's last seq (0 when it has no message).
    pub fn head(&self, tenant: &str, conv: &str) -> Result<u64> {
        last_seq(&self.txn.open_table(MESSAGES)?, tenant, conv)
    }

    /// Messages with `seq > after`, oldest first, at most `limit`.
    pub fn messages_after(
        &self,
        tenant: &str,
        conv: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<MessageRecord>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let table = self.txn.open_table(MESSAGES)?;
        for entry in table.range((tenant, conv, after.saturating_add(1))..=(tenant, conv, u64::MAX))? {
            out.push(decode(entry?.1.value())?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// A page of history, newest first: messages with `after < seq < before`, at most `limit`.
    pub fn history(
        &self,
        tenant: &str,
        conv: &str,
        before: Option<u64>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<HistoryPage> {
        let head = self.head(tenant, conv)?;
        let low = after.unwrap_or(0).saturating_add(1);
        let high = before.unwrap_or(u64::MAX).saturating_sub(1);
        let mut messages = Vec::new();
        if low <= high && limit > 0 {
            let table = self.txn.open_table(MESSAGES)?;
            for entry in table.range((tenant, conv, low)..=(tenant, conv, high))?.rev() {
                messages.push(decode::<MessageRecord>(entry?.1.value())?);
                if messages.len() >= limit {
                    break;
                }
            }
        }
        let next_before = match messages.last() {
            Some(oldest) if oldest.seq > low && messages.len() >= limit => Some(oldest.seq),
            _ => None,
        };
        Ok(HistoryPage {
            messages,
            next_before,
            head,
        })
    }

    /// A member's cursor in a conversation.
    pub fn cursor(&self, tenant: &str, user: u64, conv: &str) -> Result<Option<Cursor>> {
        Ok(self.txn.open_table(CURSORS)?.get((tenant, user, conv))?.map(|v| {
            let (delivered, read) = v.value();
            Cursor { delivered, read }
        }))
    }

    /// Every cursor of a user: the conversations the user takes part in.
    pub fn cursors_of(&self, tenant: &str, user: u64) -> Result<Vec<(String, Cursor)>> {
        let table = self.txn.open_table(CURSORS)?;
        let mut out = Vec::new();
        for entry in table.range((tenant, user, "")..(tenant, user.saturating_add(1), ""))? {
            let (k, v) = entry?;
            let (_, _, conv) = k.value();
            let (delivered, read) = v.value();
            out.push((conv.to_owned(), Cursor { delivered, read }));
        }
        Ok(out)
    }

    /// Whether a token id was revoked.
    pub fn is_token_revoked(&self, jti: &str) -> Result<bool> {
        Ok(self.txn.open_table(REVOKED_TOKENS)?.get(jti)?.is_some())
    }

    /// Every row of every table, each as the [`Effect`](crate::Effect) that writes it, in
    /// table and key order: two databases hold the same state exactly when these are
    /// equal, and applied to an empty database they make a copy. `META`'s rows that name
    /// the file rather than its state ([`DATABASE_ID`], [`LOG_APPLIED`]) are left out.
    pub fn rows(&self) -> Result<Vec<crate::Effect>> {
        let mut out = Vec::new();
        crate::tx::each_row(&self.txn, |table, key, value| {
            if crate::tx::is_file_own(table, key) {
                return;
            }
            out.push(crate::Effect {
                table,
                key: key.to_vec(),
                value: Some(value.to_vec()),
            })
        })?;
        Ok(out)
    }

    /// The position of the last record of the replicated log this file holds (0: none);
    /// see [`LOG_APPLIED`].
    pub fn log_applied(&self) -> Result<u64> {
        let meta = self.txn.open_table(META)?;
        Ok(meta.get(LOG_APPLIED)?.map_or(0, |v| v.value()))
    }

    /// The state the core rebuilds in memory at start; see [`StartupState`].
    pub fn startup_state(&self) -> Result<StartupState> {
        let mut state = StartupState::default();
        let messages = self.txn.open_table(MESSAGES)?;
        // Cursors come by tenant and user, so one conversation's cursors are not together:
        // each head is looked up once.
        let mut heads: HashMap<(String, String), u64> = HashMap::new();
        for entry in self.txn.open_table(CURSORS)?.iter()? {
            let (k, v) = entry?;
            let (tenant, user, conv) = k.value();
            let (delivered, _) = v.value();
            let head = match heads.entry((tenant.to_owned(), conv.to_owned())) {
                Entry::Occupied(known) => *known.get(),
                Entry::Vacant(new) => *new.insert(last_seq(&messages, tenant, conv)?),
            };
            if head > delivered {
                state
                    .pending
                    .push((tenant.to_owned(), user, conv.to_owned(), delivered));
            }
        }
        for entry in self.txn.open_table(REVOKED_TOKENS)?.iter()? {
            let (k, v) = entry?;
            state.revoked_tokens.push((k.value().to_owned(), v.value()));
        }
        for entry in self.txn.open_table(ADMIN_NONCES)?.iter()? {
            let (k, v) = entry?;
            state.admin_nonces.push((k.value().to_owned(), v.value()));
        }
        for entry in self.txn.open_table(USER_GATES)?.iter()? {
            let (k, v) = entry?;
            let (tenant, user) = k.value();
            state.gates.push((tenant.to_owned(), user, decode(v.value())?));
        }
        Ok(state)
    }

    /// My side of a friendship with `friend`.
    pub fn friend(&self, tenant: &str, user: u64, friend: u64) -> Result<Option<FriendRecord>> {
        let table = self.txn.open_table(FRIENDS)?;
        let value = table.get((tenant, user, friend))?;
        value.map(|v| decode(v.value())).transpose()
    }

    /// All my friends, by friend id.
    pub fn friends_of(&self, tenant: &str, user: u64) -> Result<Vec<(u64, FriendRecord)>> {
        let table = self.txn.open_table(FRIENDS)?;
        let mut out = Vec::new();
        for entry in table.range((tenant, user, 0)..=(tenant, user, u64::MAX))? {
            let (k, v) = entry?;
            out.push((k.value().2, decode(v.value())?));
        }
        Ok(out)
    }

    /// An application by id.
    pub fn apply(&self, tenant: &str, id: u64) -> Result<Option<ApplyRecord>> {
        let table = self.txn.open_table(APPLIES)?;
        let value = table.get((tenant, id))?;
        value.map(|v| decode(v.value())).transpose()
    }

    /// The latest application from `applicant` to `target`.
    pub fn apply_between(&self, tenant: &str, applicant: u64, target: u64) -> Result<Option<ApplyRecord>> {
        let id = self
            .txn
            .open_table(APPLY_PAIRS)?
            .get((tenant, applicant, target))?
            .map(|v| v.value());
        id.map_or(Ok(None), |id| self.apply(tenant, id))
    }

    /// Applications sent to `target`, newest first: `(page, total pending)`.
    pub fn applies_to(
        &self,
        tenant: &str,
        target: u64,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<ApplyRecord>, usize)> {
        let index = self.txn.open_table(APPLIES_TO)?;
        let mut page = Vec::new();
        let mut pending = 0;
        for (i, entry) in index
            .range((tenant, target, 0)..=(tenant, target, u64::MAX))?
            .rev()
            .enumerate()
        {
            let id = entry?.0.value().2;
            let apply = self
                .apply(tenant, id)?
                .ok_or_else(|| crate::Error::Codec(format!("application {id} is indexed but missing")))?;
            if apply.status == ApplyStatus::Pending {
                pending += 1;
            }
            if i >= offset && page.len() < limit {
                page.push(apply);
            }
        }
        Ok((page, pending))
    }

    /// Whether `blocker` blocks `blocked`.
    pub fn blocked(&self, tenant: &str, blocker: u64, blocked: u64) -> Result<bool> {
        Ok(self
            .txn
            .open_table(BLOCKS)?
            .get((tenant, blocker, blocked))?
            .is_some())
    }

    /// A group by id.
    pub fn group(&self, tenant: &str, id: u64) -> Result<Option<GroupRecord>> {
        let table = self.txn.open_table(GROUPS)?;
        let value = table.get((tenant, id))?;
        value.map(|v| decode(v.value())).transpose()
    }

    /// A group id by its outside id.
    pub fn group_id_by_ext(&self, tenant: &str, ext: &str) -> Result<Option<u64>> {
        Ok(self
            .txn
            .open_table(GROUP_EXT_IDS)?
            .get((tenant, ext))?
            .map(|v| v.value()))
    }

    /// The members of a group, by user id.
    pub fn members_of(&self, tenant: &str, group: u64) -> Result<Vec<(u64, MemberRecord)>> {
        let table = self.txn.open_table(MEMBERS)?;
        let mut out = Vec::new();
        for entry in table.range((tenant, group, 0)..=(tenant, group, u64::MAX))? {
            let (k, v) = entry?;
            out.push((k.value().2, decode(v.value())?));
        }
        Ok(out)
    }

    /// A membership.
    pub fn member(&self, tenant: &str, group: u64, user: u64) -> Result<Option<MemberRecord>> {
        let table = self.txn.open_table(MEMBERS)?;
        let value = table.get((tenant, group, user))?;
        value.map(|v| decode(v.value())).transpose()
    }

    /// The ids of the groups a user belongs to, ascending.
    pub fn groups_of(&self, tenant: &str, user: u64) -> Result<Vec<u64>> {
        let table = self.txn.open_table(USER_GROUPS)?;
        let mut out = Vec::new();
        for entry in table.range((tenant, user, 0)..=(tenant, user, u64::MAX))? {
            out.push(entry?.0.value().2);
        }
        Ok(out)
    }

    /// The ids of a group's members, in order, or `None` when it has more than `max`: a
    /// large group is told apart without reading all its rows.
    pub fn member_ids(&self, tenant: &str, group: u64, max: usize) -> Result<Option<Vec<u64>>> {
        let table = self.txn.open_table(MEMBERS)?;
        let mut out = Vec::new();
        for entry in table.range((tenant, group, 0)..=(tenant, group, u64::MAX))? {
            if out.len() == max {
                return Ok(None);
            }
            out.push(entry?.0.value().2);
        }
        Ok(Some(out))
    }

    /// The pending join requests of a group.
    pub fn join_requests_of(&self, tenant: &str, group: u64) -> Result<Vec<JoinRequest>> {
        let table = self.txn.open_table(JOIN_REQUESTS)?;
        let mut out = Vec::new();
        for entry in table.range((tenant, group, 0)..=(tenant, group, u64::MAX))? {
            out.push(decode(entry?.1.value())?);
        }
        Ok(out)
    }

    /// A user's view of a conversation.
    pub fn conv_state(&self, tenant: &str, user: u64, conv: &str) -> Result<ConvState> {
        let table = self.txn.open_table(CONV_STATES)?;
        let value = table.get((tenant, user, conv))?;
        Ok(value.map(|v| decode(v.value())).transpose()?.unwrap_or_default())
    }

    /// The newest message of a conversation.
    pub fn last_message(&self, tenant: &str, conv: &str) -> Result<Option<MessageRecord>> {
        let table = self.txn.open_table(MESSAGES)?;
        let last = table
            .range((tenant, conv, 0)..=(tenant, conv, u64::MAX))?
            .next_back();
        match last {
            Some(entry) => Ok(Some(decode(entry?.1.value())?)),
            None => Ok(None),
        }
    }

    /// The number of a conversation, if it was given one.
    pub fn conv_number(&self, tenant: &str, conv: &str) -> Result<Option<u64>> {
        Ok(self
            .txn
            .open_table(CONV_NUMS)?
            .get((tenant, conv))?
            .map(|v| v.value()))
    }

    /// The conversation of a number.
    pub fn conv_by_number(&self, tenant: &str, n: u64) -> Result<Option<String>> {
        Ok(self
            .txn
            .open_table(NUM_CONVS)?
            .get((tenant, n))?
            .map(|v| v.value().to_owned()))
    }

    /// A user's presence row (the default for a user without one).
    pub fn presence(&self, tenant: &str, user: u64) -> Result<Presence> {
        let table = self.txn.open_table(PRESENCE)?;
        let row = table.get((tenant, user))?.map(|v| v.value());
        Ok(Presence::from_row(row))
    }

    /// A user setting.
    pub fn user_setting(&self, tenant: &str, user: u64, scope: u32, key: &str) -> Result<Option<String>> {
        let table = self.txn.open_table(USER_SETTINGS)?;
        let value = table.get((tenant, user, scope, key))?;
        Ok(value.map(|v| v.value().to_owned()))
    }

    /// A tenant's generic system setting.
    pub fn system_setting(&self, tenant: &str, id: u32) -> Result<Option<SettingRecord>> {
        let table = self.txn.open_table(SYSTEM_SETTINGS)?;
        let value = table.get((tenant, id))?;
        value.map(|v| decode(v.value())).transpose()
    }

    /// Every tenant's settings (policy overrides): `(tenant, id, value)` by tenant and id.
    pub fn all_tenant_settings(&self) -> Result<Vec<(String, u32, String)>> {
        let mut out = Vec::new();
        for entry in self.txn.open_table(TENANT_SETTINGS)?.iter()? {
            let (k, v) = entry?;
            let (tenant, id) = k.value();
            out.push((tenant.to_owned(), id, v.value().to_owned()));
        }
        Ok(out)
    }

    /// A tenant's settings (policy overrides), by id.
    pub fn tenant_settings(&self, tenant: &str) -> Result<Vec<(u32, String)>> {
        let table = self.txn.open_table(TENANT_SETTINGS)?;
        let mut out = Vec::new();
        for entry in table.range((tenant, 0)..=(tenant, u32::MAX))? {
            let (k, v) = entry?;
            out.push((k.value().1, v.value().to_owned()));
        }
        Ok(out)
    }

    /// Messages of a conversation with `seq > after` that `keep` accepts, at most `limit`,
    /// newest or oldest first (for scans such as file lists).
    pub fn scan_messages(
        &self,
        tenant: &str,
        conv: &str,
        after: u64,
        newest_first: bool,
        mut keep: impl FnMut(&MessageRecord) -> bool,
        limit: usize,
    ) -> Result<Vec<MessageRecord>> {
        let table = self.txn.open_table(MESSAGES)?;
        let range = table.range((tenant, conv, after.saturating_add(1))..=(tenant, conv, u64::MAX))?;
        let entries: Box<dyn Iterator<Item = _>> = if newest_first {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        let mut out = Vec::new();
        for entry in entries {
            let m: MessageRecord = decode(entry?.1.value())?;
            if keep(&m) {
                out.push(m);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// A file's metadata by id.
    pub fn file(&self, tenant: &str, id: u64) -> Result<Option<FileRecord>> {
        let table = self.txn.open_table(FILES)?;
        let value = table.get((tenant, id))?;
        value.map(|v| decode(v.value())).transpose()
    }

    /// A file's metadata by its served path (any tenant: the path names one file).
    pub fn file_by_path(&self, path: &str) -> Result<Option<FileRecord>> {
        let found = self.txn.open_table(FILE_PATHS)?.get(path)?.map(|v| {
            let (tenant, id) = v.value();
            (tenant.to_owned(), id)
        });
        found.map_or(Ok(None), |(tenant, id)| self.file(&tenant, id))
    }

    /// The files `owner` uploaded, oldest first (or newest first with `desc`), skipping
    /// `offset` and returning at most `limit`.
    pub fn files_of(
        &self,
        tenant: &str,
        owner: u64,
        desc: bool,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<FileRecord>> {
        let table = self.txn.open_table(USER_FILES)?;
        let range = table.range((tenant, owner, 0)..=(tenant, owner, u64::MAX))?;
        let ids: Vec<u64> = if desc {
            range
                .rev()
                .skip(offset)
                .take(limit)
                .map(|r| r.map(|(k, _)| k.value().2))
                .collect::<std::result::Result<_, _>>()?
        } else {
            range
                .skip(offset)
                .take(limit)
                .map(|r| r.map(|(k, _)| k.value().2))
                .collect::<std::result::Result<_, _>>()?
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(f) = self.file(tenant, id)? {
                out.push(f);
            }
        }
        Ok(out)
    }

    /// A tenant's webhook endpoint.
    pub fn webhook(&self, tenant: &str, id: u64) -> Result<Option<WebhookRecord>> {
        let table = self.txn.open_table(WEBHOOKS)?;
        let value = table.get((tenant, id))?;
        value.map(|v| decode(v.value())).transpose()
    }

    /// Every webhook endpoint of `tenant` (of every tenant when `None`), in id order per
    /// tenant.
    pub fn webhooks(&self, tenant: Option<&str>) -> Result<Vec<WebhookRecord>> {
        let table = self.txn.open_table(WEBHOOKS)?;
        let mut out = Vec::new();
        let rows = match tenant {
            Some(t) => table.range((t, 0)..=(t, u64::MAX))?,
            None => table.range::<(&str, u64)>(..)?,
        };
        for entry in rows {
            out.push(decode(entry?.1.value())?);
        }
        Ok(out)
    }

    /// The first `limit` waiting events of a tenant's endpoint, in event id order.
    pub fn outbox_of(&self, tenant: &str, endpoint: u64, limit: usize) -> Result<Vec<OutboxEvent>> {
        let table = self.txn.open_table(WEBHOOK_OUTBOX)?;
        let mut out = Vec::new();
        for entry in table
            .range((tenant, endpoint, 0)..=(tenant, endpoint, u64::MAX))?
            .take(limit)
        {
            out.push(decode(entry?.1.value())?);
        }
        Ok(out)
    }

    /// How many webhook events wait, and how many are dead letters.
    pub fn outbox_len(&self) -> Result<(u64, u64)> {
        use redb::ReadableTableMetadata;
        Ok((
            self.txn.open_table(WEBHOOK_OUTBOX)?.len()?,
            self.txn.open_table(WEBHOOK_DEAD)?.len()?,
        ))
    }

    /// The dead letters of a tenant's endpoint (every endpoint's when `None`), oldest first,
    /// at most `limit`.
    pub fn dead_letters(
        &self,
        tenant: &str,
        endpoint: Option<u64>,
        limit: usize,
    ) -> Result<Vec<OutboxEvent>> {
        let table = self.txn.open_table(WEBHOOK_DEAD)?;
        let (low, high) = match endpoint {
            Some(e) => ((tenant, e, 0), (tenant, e, u64::MAX)),
            None => ((tenant, 0, 0), (tenant, u64::MAX, u64::MAX)),
        };
        let mut out = Vec::new();
        for entry in table.range(low..=high)?.take(limit) {
            out.push(decode(entry?.1.value())?);
        }
        Ok(out)
    }
}
