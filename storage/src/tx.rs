//! [`Tx`]: the typed view of one write transaction, used only inside the Writer thread.
//!
//! Every table is opened at most once per batch and kept open for all the writes of that
//! batch. A method that refuses a write (a conflict, a missing row) checks before it writes,
//! so a refused write leaves nothing behind in the shared transaction.

use std::borrow::Borrow;
use std::cell::{OnceCell, RefCell, RefMut};
use std::ops::{Deref, RangeBounds};

use redb::{AccessGuard, Key, ReadTransaction, ReadableTable, StorageError, Table, Value, WriteTransaction};

use crate::codec::{decode, encode};
use crate::effects::Effect;
use crate::heads::{Heads, NewHeads};
use crate::recent::{RecentCids, PRUNE_MAX};
use crate::records::{
    ApplyRecord, ConvState, Cursor, FileRecord, FriendRecord, GateRecord, GroupRecord, JoinRequest,
    MemberRecord, MessageRecord, OutboxEvent, Presence, SettingRecord, UserRecord, WebhookRecord,
};
use crate::tables::*;
use crate::{Error, Result};

type Lazy<'t, K, V> = OnceCell<RefCell<Table<'t, K, V>>>;

/// A table of the batch's transaction, opened through [`Tx`]: reads go to the table
/// itself; inserts and removals go through here, which records them as [`Effect`]s when
/// the Writer keeps an effect log. The table cannot be changed any other way.
pub(crate) struct Recorded<'a, 't, K: Key + 'static, V: Value + 'static> {
    table: RefMut<'a, Table<'t, K, V>>,
    id: u16,
    effects: Option<&'a RefCell<Vec<Effect>>>,
}

impl<'t, K: Key + 'static, V: Value + 'static> Deref for Recorded<'_, 't, K, V> {
    type Target = Table<'t, K, V>;

    fn deref(&self) -> &Self::Target {
        &self.table
    }
}

impl<K: Key + 'static, V: Value + 'static> Recorded<'_, '_, K, V> {
    /// Inserts (or replaces) a row, as redb's `insert`; recorded once it succeeded.
    pub(crate) fn insert<'k, 'v>(
        &mut self,
        key: impl Borrow<K::SelfType<'k>>,
        value: impl Borrow<V::SelfType<'v>>,
    ) -> std::result::Result<Option<AccessGuard<'_, V>>, StorageError> {
        let (effects, table) = (self.effects, self.id);
        let effect = effects.map(|_| Effect {
            table,
            key: K::as_bytes(key.borrow()).as_ref().to_vec(),
            value: Some(V::as_bytes(value.borrow()).as_ref().to_vec()),
        });
        let old = self.table.insert(key, value)?;
        if let (Some(effects), Some(effect)) = (effects, effect) {
            effects.borrow_mut().push(effect);
        }
        Ok(old)
    }

    /// Removes a row, as redb's `remove`; recorded when there was one.
    pub(crate) fn remove<'k>(
        &mut self,
        key: impl Borrow<K::SelfType<'k>>,
    ) -> std::result::Result<Option<AccessGuard<'_, V>>, StorageError> {
        let (effects, table) = (self.effects, self.id);
        let removed = self.table.remove(key.borrow())?;
        if let (Some(effects), true) = (effects, removed.is_some()) {
            effects.borrow_mut().push(Effect {
                table,
                key: K::as_bytes(key.borrow()).as_ref().to_vec(),
                value: None,
            });
        }
        Ok(removed)
    }

    /// Removes every row in `range`; returns how many.
    pub(crate) fn remove_range<'a, KR>(&mut self, range: impl RangeBounds<KR> + 'a) -> Result<usize>
    where
        KR: Borrow<K::SelfType<'a>> + 'a,
    {
        let mut keys = Vec::new();
        for entry in self.table.range(range)? {
            keys.push(K::as_bytes(&entry?.0.value()).as_ref().to_vec());
        }
        for key in &keys {
            self.remove(K::from_bytes(key))?;
        }
        Ok(keys.len())
    }

    /// Applies one effect of this table recorded elsewhere, recording nothing: what is
    /// applied came from the log and must not go back into it.
    fn apply(&mut self, effect: &Effect) -> Result<()> {
        let key = K::from_bytes(&effect.key);
        match &effect.value {
            Some(value) => {
                self.table.insert(key, V::from_bytes(value))?;
            }
            None => {
                self.table.remove(key)?;
            }
        }
        Ok(())
    }
}

macro_rules! lazy_tables {
    ($($field:ident: $def:ident = $id:literal => $k:ty, $v:ty;)*) => {
        /// One write transaction of a batch; see the module doc.
        pub struct Tx<'t> {
            txn: &'t WriteTransaction,
            /// The batch's effects, when the Writer records them.
            effects: Option<RefCell<Vec<Effect>>>,
            /// The Writer's index of [`RECENT_CIDS`].
            recent: &'t RefCell<RecentCids>,
            /// The heads the Writer's earlier commits left.
            heads: &'t RefCell<Heads>,
            /// The heads this transaction read or moved, for the Writer to keep once it
            /// committed.
            new_heads: RefCell<NewHeads>,
            $($field: Lazy<'t, $k, $v>,)*
        }

        impl<'t> Tx<'t> {
            /// A view of `txn`; `record`: keep the [`Effect`] of every change; `recent`: the
            /// Writer's index of recent client ids; `heads`: its committed heads.
            pub(crate) fn new(
                txn: &'t WriteTransaction,
                record: bool,
                recent: &'t RefCell<RecentCids>,
                heads: &'t RefCell<Heads>,
            ) -> Self {
                Tx {
                    txn,
                    effects: record.then(RefCell::default),
                    recent,
                    heads,
                    new_heads: RefCell::default(),
                    $($field: OnceCell::new(),)*
                }
            }

            /// The heads this transaction read or moved (for the Writer, after the commit).
            pub(crate) fn take_new_heads(&self) -> NewHeads {
                self.new_heads.take()
            }

            /// Whether this transaction opened the webhook outbox (to write it, or read it).
            pub(crate) fn opened_outbox(&self) -> bool {
                self.outbox.get().is_some()
            }

            $(
                pub(crate) fn $field(&self) -> Result<Recorded<'_, 't, $k, $v>> {
                    if self.$field.get().is_none() {
                        let table = self.txn.open_table($def)?;
                        let _ = self.$field.set(RefCell::new(table));
                    }
                    Ok(Recorded {
                        table: self.$field.get().expect("table opened above").borrow_mut(),
                        id: $id,
                        effects: self.effects.as_ref(),
                    })
                }
            )*

            /// Hands the effects recorded so far to `log` (nothing when there are none)
            /// and notes the position it gives as [`LOG_APPLIED`].
            pub(crate) fn log_effects(&self, log: &crate::EffectLog) -> Result<()> {
                let effects = self.effects.as_ref().map(|e| e.take()).unwrap_or_default();
                if effects.is_empty() {
                    return Ok(());
                }
                let at = log.append(&effects)?;
                self.meta()?.table.insert(LOG_APPLIED, at)?;
                Ok(())
            }

            /// Applies the log record at position `at`, a batch encoded by
            /// [`encode_batch`](crate::effects::encode_batch) (see
            /// [`apply_effects`](Self::apply_effects)), and notes `at` as [`LOG_APPLIED`].
            /// Records come in log order: one at or before the position already applied
            /// is skipped (`false`).
            pub fn apply_logged(&self, at: u64, record: &[u8]) -> Result<bool> {
                if at <= self.log_applied()? {
                    return Ok(false);
                }
                self.apply_effects(&crate::effects::decode_batch(record)?)?;
                self.meta()?.table.insert(LOG_APPLIED, at)?;
                Ok(true)
            }

            /// The position of the last log record this file holds (0: none).
            pub fn log_applied(&self) -> Result<u64> {
                Ok(self.meta()?.get(LOG_APPLIED)?.map_or(0, |v| v.value()))
            }

            /// Applies effects recorded by another Writer, in their order: the rows they
            /// wrote are written, the rows they removed are removed, and nothing else is
            /// done (no rule, clock or counter is consulted).
            pub fn apply_effects(&self, effects: &[Effect]) -> Result<()> {
                if effects.iter().any(|e| e.table == RECENT_CIDS_ID) {
                    // Rows the index was not told of: build it again before its next use.
                    self.recent.borrow_mut().invalidate();
                }
                if effects.iter().any(|e| e.table == MESSAGES_ID) {
                    // Timelines moved behind the heads' back: read them again.
                    self.heads.borrow_mut().clear();
                    self.new_heads.take();
                }
                for effect in effects {
                    match effect.table {
                        $($id => self.$field()?.apply(effect)?,)*
                        other => return Err(Error::Codec(format!("effect of unknown table {other}"))),
                    }
                }
                Ok(())
            }
        }

        /// Every row of every table that effects can change, as `(table id, key bytes,
        /// value bytes)`, table by table in key order: what two copies compare to find
        /// whether they hold the same rows.
        pub(crate) fn each_row(
            txn: &ReadTransaction,
            mut f: impl FnMut(u16, &[u8], &[u8]),
        ) -> Result<()> {
            $(
                for entry in txn.open_table($def)?.iter()? {
                    let (k, v) = entry?;
                    f(
                        $id,
                        <$k as Value>::as_bytes(&k.value()).as_ref(),
                        <$v as Value>::as_bytes(&v.value()).as_ref(),
                    );
                }
            )*
            Ok(())
        }
    };
}

/// Whether a row is one of `META`'s rows that belong to the file, not to the state it
/// holds: [`DATABASE_ID`], written when the file is created, and [`LOG_APPLIED`], which
/// every copy writes for itself.
pub(crate) fn is_file_own(table: u16, key: &[u8]) -> bool {
    table == 1 && (key == DATABASE_ID.as_bytes() || key == LOG_APPLIED.as_bytes())
}

// The ids are the tables' names in effects: fixed forever, never reused (9 was the table of
// heads of earlier versions).
lazy_tables! {
    meta: META = 1 => &'static str, u64;
    users: USERS = 2 => (&'static str, u64), &'static [u8];
    usernames: USERNAMES = 3 => (&'static str, &'static str), u64;
    uuids: USER_UUIDS = 4 => (&'static str, &'static str), u64;
    devices: DEVICES = 5 => (&'static str, &'static str), u64;
    messages: MESSAGES = 6 => (&'static str, &'static str, u64), &'static [u8];
    message_ids: MESSAGE_IDS = 7 => (&'static str, &'static str), (&'static str, u64);
    dedup_table: DEDUP = 8 => (&'static str, u64, &'static str), (&'static str, u64);
    cursors: CURSORS = 10 => (&'static str, u64, &'static str), (u64, u64);
    revoked: REVOKED_TOKENS = 11 => &'static str, u64;
    nonces: ADMIN_NONCES = 12 => &'static str, u64;
    friends: FRIENDS = 13 => (&'static str, u64, u64), &'static [u8];
    applies: APPLIES = 14 => (&'static str, u64), &'static [u8];
    applies_to: APPLIES_TO = 15 => (&'static str, u64, u64), ();
    apply_pairs: APPLY_PAIRS = 16 => (&'static str, u64, u64), u64;
    blocks: BLOCKS = 17 => (&'static str, u64, u64), u64;
    conv_states: CONV_STATES = 18 => (&'static str, u64, &'static str), &'static [u8];
    conv_nums: CONV_NUMS = 19 => (&'static str, &'static str), u64;
    num_convs: NUM_CONVS = 20 => (&'static str, u64), &'static str;
    user_settings: USER_SETTINGS = 21 => (&'static str, u64, u32, &'static str), &'static str;
    tenant_settings: TENANT_SETTINGS = 22 => (&'static str, u32), &'static str;
    system_settings: SYSTEM_SETTINGS = 23 => (&'static str, u32), &'static [u8];
    groups: GROUPS = 24 => (&'static str, u64), &'static [u8];
    group_ext: GROUP_EXT_IDS = 25 => (&'static str, &'static str), u64;
    members: MEMBERS = 26 => (&'static str, u64, u64), &'static [u8];
    user_groups: USER_GROUPS = 27 => (&'static str, u64, u64), ();
    join_requests: JOIN_REQUESTS = 28 => (&'static str, u64, u64), &'static [u8];
    stranger_table: STRANGER_SENDS = 29 => (&'static str, u64, u64), u64;
    files: FILES = 30 => (&'static str, u64), &'static [u8];
    user_files: USER_FILES = 31 => (&'static str, u64, u64), ();
    file_paths: FILE_PATHS = 32 => &'static str, (&'static str, u64);
    gates: USER_GATES = 33 => (&'static str, u64), &'static [u8];
    webhooks: WEBHOOKS = 34 => (&'static str, u64), &'static [u8];
    outbox: WEBHOOK_OUTBOX = 35 => (&'static str, u64, u64), &'static [u8];
    dead_letters: WEBHOOK_DEAD = 36 => (&'static str, u64, u64), &'static [u8];
    presence_table: PRESENCE = 37 => (&'static str, u64), (u64, bool);
    recent_cids: RECENT_CIDS = 38 => (u64, &'static str, u64, &'static str), (&'static str, u64);
}

/// The id of [`RECENT_CIDS`] in effects (see the list above).
const RECENT_CIDS_ID: u16 = 38;
/// The id of [`MESSAGES`] in effects.
const MESSAGES_ID: u16 = 6;

/// Collects what `$owned` makes of each key of a range of a table (to remove rows after
/// the range is dropped).
macro_rules! keys_in {
    ($table:expr, $range:expr, |$k:pat_param| $owned:expr) => {{
        let table = $table;
        let mut keys = Vec::new();
        for entry in table.range($range)? {
            let (key, _) = entry?;
            let $k = key.value();
            keys.push($owned);
        }
        keys
    }};
}

impl Tx<'_> {
    /// Increments the named counter and returns its new value (the first is 1).
    pub fn next_counter(&self, name: &str) -> Result<u64> {
        let mut meta = self.meta()?;
        let next = meta.get(name)?.map(|v| v.value()).unwrap_or(0) + 1;
        meta.insert(name, next)?;
        Ok(next)
    }

    /// A user by id.
    pub fn user(&self, tenant: &str, id: u64) -> Result<Option<UserRecord>> {
        self.users()?
            .get((tenant, id))?
            .map(|v| decode(v.value()))
            .transpose()
    }

    /// A user id by username.
    pub fn user_id_by_username(&self, tenant: &str, username: &str) -> Result<Option<u64>> {
        Ok(self.usernames()?.get((tenant, username))?.map(|v| v.value()))
    }

    /// The visitor bound to a device.
    pub fn user_id_by_device(&self, tenant: &str, device: &str) -> Result<Option<u64>> {
        Ok(self.devices()?.get((tenant, device))?.map(|v| v.value()))
    }

    /// Stores a new user. Gives it the next user id when `user.id` is 0. Refuses a taken
    /// username or uuid with [`Error::Conflict`], writing nothing.
    pub fn insert_user(&self, user: &mut UserRecord) -> Result<()> {
        let tenant = user.tenant.as_str();
        if self.usernames()?.get((tenant, user.username.as_str()))?.is_some() {
            return Err(Error::Conflict(format!("username {} is taken", user.username)));
        }
        if self.uuids()?.get((tenant, user.uuid.as_str()))?.is_some() {
            return Err(Error::Conflict(format!("uuid {} is taken", user.uuid)));
        }
        if user.id == 0 {
            // Skip ids taken by users inserted with an explicit id.
            loop {
                user.id = self.next_counter("next_user_id")?;
                if self.users()?.get((tenant, user.id))?.is_none() {
                    break;
                }
            }
        } else if self.users()?.get((tenant, user.id))?.is_some() {
            return Err(Error::Conflict(format!("user id {} is taken", user.id)));
        }
        self.users()?.insert((tenant, user.id), encode(user).as_slice())?;
        self.usernames()?
            .insert((tenant, user.username.as_str()), user.id)?;
        self.uuids()?.insert((tenant, user.uuid.as_str()), user.id)?;
        Ok(())
    }

    /// Replaces an existing user. A changed username must be free ([`Error::Conflict`]
    /// otherwise); the old one is released.
    pub fn put_user(&self, user: &UserRecord) -> Result<()> {
        let tenant = user.tenant.as_str();
        let old = self
            .user(tenant, user.id)?
            .ok_or_else(|| Error::NotFound(format!("user {}", user.id)))?;
        if old.username != user.username {
            if self.usernames()?.get((tenant, user.username.as_str()))?.is_some() {
                return Err(Error::Conflict(format!("username {} is taken", user.username)));
            }
            self.usernames()?.remove((tenant, old.username.as_str()))?;
            self.usernames()?
                .insert((tenant, user.username.as_str()), user.id)?;
        }
        self.users()?.insert((tenant, user.id), encode(user).as_slice())?;
        Ok(())
    }

    /// What user `id`'s tokens must pass (the default when nothing was ever revoked).
    pub fn gate(&self, tenant: &str, id: u64) -> Result<GateRecord> {
        Ok(self
            .gates()?
            .get((tenant, id))?
            .map(|v| decode(v.value()))
            .transpose()?
            .unwrap_or_default())
    }

    /// Changes user `id`'s gate with `change` at `now_ms`, bumping its generation and
    /// stamping the revocation time (so every token issued before is refused unless
    /// `change` keeps one), and returns it.
    pub fn change_gate(
        &self,
        tenant: &str,
        id: u64,
        now_ms: u64,
        change: impl FnOnce(&mut GateRecord),
    ) -> Result<GateRecord> {
        let mut gate = self.gate(tenant, id)?;
        gate.generation += 1;
        gate.kept_jti = None;
        gate.revoked_ms = now_ms;
        change(&mut gate);
        self.gates()?.insert((tenant, id), encode(&gate).as_slice())?;
        Ok(gate)
    }

    /// Removes user `id` of `tenant` and what is theirs alone: the record with its
    /// username, uuid and device indexes, both sides of each friendship, the applications
    /// from and to them, blocks and stranger counts either way, their cursors,
    /// conversation states, settings, memberships and join requests. Messages, heads,
    /// uploads and the gate stay. Returns the removed record (`None`: there was none).
    pub fn remove_user(&self, tenant: &str, id: u64) -> Result<Option<UserRecord>> {
        let Some(user) = self.user(tenant, id)? else {
            return Ok(None);
        };
        self.users()?.remove((tenant, id))?;
        self.usernames()?.remove((tenant, user.username.as_str()))?;
        self.uuids()?.remove((tenant, user.uuid.as_str()))?;
        if let Some(device) = &user.device_id {
            if self.user_id_by_device(tenant, device)? == Some(id) {
                self.devices()?.remove((tenant, device.as_str()))?;
            }
        }
        let mine = (tenant, id, 0)..=(tenant, id, u64::MAX);
        let all = (tenant, 0, 0)..=(tenant, u64::MAX, u64::MAX);
        for friend in keys_in!(self.friends()?, mine.clone(), |k| k.2) {
            self.friends()?.remove((tenant, id, friend))?;
            self.friends()?.remove((tenant, friend, id))?;
        }
        // Applications to the user, then from the user (to each target it applied to).
        let mut applications: Vec<(u64, u64)> = keys_in!(self.applies_to()?, mine.clone(), |k| (k.1, k.2));
        for target in keys_in!(self.apply_pairs()?, mine.clone(), |k| k.2) {
            let to_target = (tenant, target, 0)..=(tenant, target, u64::MAX);
            for apply in keys_in!(self.applies_to()?, to_target, |k| k.2) {
                if self.apply(tenant, apply)?.is_some_and(|a| a.applicant == id) {
                    applications.push((target, apply));
                }
            }
        }
        for (target, apply) in applications {
            if let Some(a) = self.apply(tenant, apply)? {
                let pair = (tenant, a.applicant, a.target);
                if self.apply_pairs()?.get(pair)?.is_some_and(|v| v.value() == apply) {
                    self.apply_pairs()?.remove(pair)?;
                }
            }
            self.applies()?.remove((tenant, apply))?;
            self.applies_to()?.remove((tenant, target, apply))?;
        }
        for (a, b) in keys_in!(self.blocks()?, all.clone(), |k| (k.1, k.2)) {
            if a == id || b == id {
                self.blocks()?.remove((tenant, a, b))?;
            }
        }
        for (a, b) in keys_in!(self.stranger_table()?, all.clone(), |k| (k.1, k.2)) {
            if a == id || b == id {
                self.stranger_table()?.remove((tenant, a, b))?;
            }
        }
        for (group, user) in keys_in!(self.join_requests()?, all, |k| (k.1, k.2)) {
            if user == id {
                self.join_requests()?.remove((tenant, group, user))?;
            }
        }
        for group in keys_in!(self.user_groups()?, mine, |k| k.2) {
            self.members()?.remove((tenant, group, id))?;
            self.user_groups()?.remove((tenant, id, group))?;
        }
        let next = id.saturating_add(1);
        for cid in keys_in!(self.dedup_table()?, (tenant, id, "")..(tenant, next, ""), |k| k
            .2
            .to_owned())
        {
            self.dedup_table()?.remove((tenant, id, cid.as_str()))?;
        }
        for conv in keys_in!(self.cursors()?, (tenant, id, "")..(tenant, next, ""), |k| k
            .2
            .to_owned())
        {
            self.cursors()?.remove((tenant, id, conv.as_str()))?;
        }
        for conv in keys_in!(self.conv_states()?, (tenant, id, "")..(tenant, next, ""), |k| k
            .2
            .to_owned())
        {
            self.conv_states()?.remove((tenant, id, conv.as_str()))?;
        }
        let settings = (tenant, id, 0, "")..(tenant, next, 0, "");
        for (scope, key) in keys_in!(self.user_settings()?, settings, |k| (k.2, k.3.to_owned())) {
            self.user_settings()?.remove((tenant, id, scope, key.as_str()))?;
        }
        self.presence_table()?.remove((tenant, id))?;
        Ok(Some(user))
    }

    /// Binds a device to a (visitor) user.
    pub fn bind_device(&self, tenant: &str, device: &str, user: u64) -> Result<()> {
        self.devices()?.insert((tenant, device), user)?;
        Ok(())
    }

    /// The message a sender already stored under this client id within the dedup window
    /// (or under the table of earlier versions), if any.
    pub fn dedup(&self, tenant: &str, sender: u64, cid: &str) -> Result<Option<MessageRecord>> {
        let at = {
            let recent = self.recent_index()?;
            let cutoff = recent.cutoff(crate::now_ms());
            // A row past the window is forgotten even before it is pruned.
            recent
                .get(recent.key(tenant, sender, cid))
                .filter(|at| *at >= cutoff)
        };
        let row = |v: AccessGuard<'_, (&'static str, u64)>| {
            let (conv, seq) = v.value();
            (conv.to_owned(), seq)
        };
        let mut hit = match at {
            Some(at) => self.recent_cids()?.get((at, tenant, sender, cid))?.map(row),
            None => None,
        };
        if hit.is_none() {
            hit = self.dedup_table()?.get((tenant, sender, cid))?.map(row);
        }
        match hit {
            Some((conv, seq)) => self.message(tenant, &conv, seq),
            None => Ok(None),
        }
    }

    /// The index of recent client ids, built from [`RECENT_CIDS`] first when it is not.
    fn recent_index(&self) -> Result<RefMut<'_, RecentCids>> {
        let mut recent = self.recent.borrow_mut();
        if !recent.is_built() {
            recent.rebuild(&*self.recent_cids()?)?;
        }
        Ok(recent)
    }

    /// Notes that `sender` used `cid` for the message at `(conv, seq)`, stored at `at` (ms),
    /// and removes rows past the window when that is due.
    fn note_cid(&self, tenant: &str, sender: u64, cid: &str, conv: &str, seq: u64, at: u64) -> Result<()> {
        self.recent_cids()?
            .insert((at, tenant, sender, cid), (conv, seq))?;
        let now = crate::now_ms();
        let cutoff = {
            let mut recent = self.recent_index()?;
            let key = recent.key(tenant, sender, cid);
            recent.note(key, at);
            if !recent.prune_due(now) {
                return Ok(());
            }
            recent.cutoff(now)
        };
        let mut expired = Vec::new();
        for entry in self
            .recent_cids()?
            .range((0, "", 0, "")..(cutoff, "", 0, ""))?
            .take(PRUNE_MAX + 1)
        {
            let (key, _) = entry?;
            let (at, tenant, sender, cid) = key.value();
            expired.push((at, tenant.to_owned(), sender, cid.to_owned()));
        }
        for (at, tenant, sender, cid) in expired.iter().take(PRUNE_MAX) {
            self.recent_cids()?
                .remove((*at, tenant.as_str(), *sender, cid.as_str()))?;
            let mut recent = self.recent.borrow_mut();
            let key = recent.key(tenant, *sender, cid);
            recent.forget(key, *at);
        }
        if expired.len() > PRUNE_MAX {
            self.recent.borrow_mut().prune_again();
        }
        Ok(())
    }

    /// Entries of the index of recent client ids (0 before its first use).
    pub(crate) fn recent_cids_held(&self) -> usize {
        self.recent.borrow().len()
    }

    /// A message by its position.
    pub fn message(&self, tenant: &str, conv: &str, seq: u64) -> Result<Option<MessageRecord>> {
        self.messages()?
            .get((tenant, conv, seq))?
            .map(|v| decode(v.value()))
            .transpose()
    }

    /// A message by its id.
    pub fn message_by_id(&self, tenant: &str, id: &str) -> Result<Option<MessageRecord>> {
        let at = self.message_ids()?.get((tenant, id))?.map(|v| {
            let (conv, seq) = v.value();
            (conv.to_owned(), seq)
        });
        match at {
            Some((conv, seq)) => self.message(tenant, &conv, seq),
            None => Ok(None),
        }
    }

    /// Appends a message to its conversation's timeline: the message, its id index and its
    /// client id (when given). Refuses a position already taken. The head is the timeline's
    /// last seq, so a message stored below it (an import) leaves the head where it is.
    pub fn append_message(&self, tenant: &str, msg: &MessageRecord) -> Result<()> {
        self.store_at_free(tenant, msg, Some(crate::now_ms()))
    }

    /// Appends a message of a copy (an export being loaded), as
    /// [`append_message`](Self::append_message) does, except that its `cid` is kept only
    /// when the message was created within the dedup window, as stored at its creation.
    pub(crate) fn load_message(&self, tenant: &str, msg: &MessageRecord) -> Result<()> {
        let now = crate::now_ms();
        let recent = msg.create_time >= self.recent.borrow().cutoff(now);
        self.store_at_free(tenant, msg, recent.then(|| msg.create_time.min(now)))
    }

    /// [`store_message_at`](Self::store_message_at) at a position not yet taken; refuses
    /// one that is.
    fn store_at_free(&self, tenant: &str, msg: &MessageRecord, cid_at: Option<u64>) -> Result<()> {
        let key = (tenant, msg.conv.as_str(), msg.seq);
        if self.messages()?.get(key)?.is_some() {
            return Err(Error::Conflict(format!("{}#{} exists", msg.conv, msg.seq)));
        }
        self.store_message_at(tenant, msg, cid_at)
    }

    /// Appends `msg` as the next message of its conversation: stamps `msg.seq` with the
    /// head's successor and writes the message, its id and its `cid`. The send paths use it
    /// (the seq cannot be taken, being past the head of this very transaction);
    /// [`append_message`](Self::append_message) stores a message whose seq is already set.
    pub fn append_next(&self, tenant: &str, msg: &mut MessageRecord) -> Result<()> {
        msg.seq = self.head(tenant, &msg.conv)? + 1;
        self.store_message_at(tenant, msg, Some(crate::now_ms()))
    }

    /// Writes a message with its seq set, its id, and its `cid` as stored at `cid_at` (ms;
    /// `None`: the `cid` is not kept).
    fn store_message_at(&self, tenant: &str, msg: &MessageRecord, cid_at: Option<u64>) -> Result<()> {
        let conv = msg.conv.as_str();
        let head = self.head(tenant, conv)?;
        self.messages()?
            .insert((tenant, conv, msg.seq), encode(msg).as_slice())?;
        self.new_heads.borrow_mut().set(tenant, conv, head.max(msg.seq));
        self.message_ids()?
            .insert((tenant, msg.id.as_str()), (conv, msg.seq))?;
        if let (Some(cid), Some(at)) = (&msg.cid, cid_at) {
            self.note_cid(tenant, msg.from_id, cid, conv, msg.seq, at)?;
        }
        Ok(())
    }

    /// Moves `user`'s cursor over their own message `seq` in one lookup and at most one
    /// write: read up to `seq`, delivered up to `seq` when nothing before it is still
    /// undelivered. A user without a cursor gets one when `create` is set (the sender of a
    /// direct message) and is left alone otherwise (only members have cursors).
    pub fn pass_own_message(
        &self,
        tenant: &str,
        user: u64,
        conv: &str,
        seq: u64,
        create: bool,
    ) -> Result<()> {
        let mut cursors = self.cursors()?;
        let current = cursors.get((tenant, user, conv))?.map(|v| v.value());
        let (delivered, read) = match current {
            Some(c) => c,
            None if create => (0, 0),
            None => return Ok(()),
        };
        let next = (if delivered + 1 == seq { seq } else { delivered }, read.max(seq));
        if current != Some(next) {
            cursors.insert((tenant, user, conv), next)?;
        }
        Ok(())
    }

    /// Replaces a stored message in place (same conversation and seq), e.g. to revoke it.
    pub fn put_message(&self, tenant: &str, msg: &MessageRecord) -> Result<()> {
        let key = (tenant, msg.conv.as_str(), msg.seq);
        if self.messages()?.get(key)?.is_none() {
            return Err(Error::NotFound(format!("{}#{}", msg.conv, msg.seq)));
        }
        self.messages()?.insert(key, encode(msg).as_slice())?;
        Ok(())
    }

    /// A member's cursor in a conversation, if the member has one.
    pub fn cursor(&self, tenant: &str, user: u64, conv: &str) -> Result<Option<Cursor>> {
        Ok(self.cursors()?.get((tenant, user, conv))?.map(|v| {
            let (delivered, read) = v.value();
            Cursor { delivered, read }
        }))
    }

    /// Creates a zero cursor for a member who has none.
    pub fn ensure_cursor(&self, tenant: &str, user: u64, conv: &str) -> Result<()> {
        let mut cursors = self.cursors()?;
        if cursors.get((tenant, user, conv))?.is_none() {
            cursors.insert((tenant, user, conv), (0, 0))?;
        }
        Ok(())
    }

    /// The head seq of a conversation: its timeline's last seq (0 when it has no message).
    pub fn head(&self, tenant: &str, conv: &str) -> Result<u64> {
        if let Some(head) = self.new_heads.borrow().get(tenant, conv) {
            return Ok(head);
        }
        let head = match self.heads.borrow().get(tenant, conv) {
            Some(head) => head,
            None => last_seq(&*self.messages()?, tenant, conv)?,
        };
        self.new_heads.borrow_mut().set(tenant, conv, head);
        Ok(head)
    }

    /// Moves an existing cursor forward (never back) and returns it; `None` (writing
    /// nothing) when the user has no cursor in that conversation. The two positions move
    /// independently: a read receipt does not mark unseen messages delivered.
    pub fn advance_cursor(
        &self,
        tenant: &str,
        user: u64,
        conv: &str,
        delivered: u64,
        read: u64,
    ) -> Result<Option<Cursor>> {
        let mut cursors = self.cursors()?;
        // Only members have cursors: a position reported for another conversation is
        // ignored rather than making the user a reader of it.
        let Some((d, r)) = cursors.get((tenant, user, conv))?.map(|v| v.value()) else {
            return Ok(None);
        };
        let next = (d.max(delivered), r.max(read));
        if next != (d, r) {
            cursors.insert((tenant, user, conv), next)?;
        }
        Ok(Some(Cursor {
            delivered: next.0,
            read: next.1,
        }))
    }

    /// Records a revoked token id until its expiry.
    pub fn revoke_token(&self, jti: &str, exp: u64) -> Result<()> {
        self.revoked()?.insert(jti, exp)?;
        Ok(())
    }

    /// Remembers an admin request's nonce until `until_ms`; `false` (and nothing changed)
    /// when it is remembered already. Nonces past their time are forgotten on the way.
    pub fn remember_nonce(&self, nonce: &str, now_ms: u64, until_ms: u64) -> Result<bool> {
        let mut table = self.nonces()?;
        if table.get(nonce)?.is_some_and(|until| until.value() >= now_ms) {
            return Ok(false);
        }
        forget_before(&mut table, now_ms)?;
        table.insert(nonce, until_ms)?;
        Ok(true)
    }

    /// Forgets revoked tokens that have expired anyway; returns how many.
    pub fn prune_revoked_tokens(&self, now_secs: u64) -> Result<usize> {
        let mut table = self.revoked()?;
        forget_before(&mut table, now_secs)
    }

    /// My side of a friendship with `friend`.
    pub fn friend(&self, tenant: &str, user: u64, friend: u64) -> Result<Option<FriendRecord>> {
        self.friends()?
            .get((tenant, user, friend))?
            .map(|v| decode(v.value()))
            .transpose()
    }

    /// Stores my side of a friendship (a new row gets the next row id when `row_id` is 0).
    pub fn put_friend(&self, tenant: &str, user: u64, friend: u64, record: &mut FriendRecord) -> Result<()> {
        if record.row_id == 0 {
            record.row_id = self.next_counter("next_friend_row")?;
        }
        self.friends()?
            .insert((tenant, user, friend), encode(record).as_slice())?;
        Ok(())
    }

    /// Removes my side of a friendship; returns whether there was one.
    pub fn remove_friend(&self, tenant: &str, user: u64, friend: u64) -> Result<bool> {
        Ok(self.friends()?.remove((tenant, user, friend))?.is_some())
    }

    /// An application by id.
    pub fn apply(&self, tenant: &str, id: u64) -> Result<Option<ApplyRecord>> {
        self.applies()?
            .get((tenant, id))?
            .map(|v| decode(v.value()))
            .transpose()
    }

    /// The latest application from `applicant` to `target`.
    pub fn apply_between(&self, tenant: &str, applicant: u64, target: u64) -> Result<Option<ApplyRecord>> {
        let id = self
            .apply_pairs()?
            .get((tenant, applicant, target))?
            .map(|v| v.value());
        id.map_or(Ok(None), |id| self.apply(tenant, id))
    }

    /// Stores an application; a new one (id 0) gets the next id and is indexed.
    pub fn put_apply(&self, tenant: &str, record: &mut ApplyRecord) -> Result<()> {
        if record.id == 0 {
            record.id = self.next_counter("next_apply_id")?;
            self.applies_to()?
                .insert((tenant, record.target, record.id), ())?;
            self.apply_pairs()?
                .insert((tenant, record.applicant, record.target), record.id)?;
        }
        self.applies()?
            .insert((tenant, record.id), encode(record).as_slice())?;
        Ok(())
    }

    /// Whether `blocker` blocks `blocked`.
    pub fn blocked(&self, tenant: &str, blocker: u64, blocked: u64) -> Result<bool> {
        Ok(self.blocks()?.get((tenant, blocker, blocked))?.is_some())
    }

    /// Blocks or unblocks; returns whether the block existed before.
    pub fn set_block(&self, tenant: &str, blocker: u64, blocked: u64, on: bool, now_ms: u64) -> Result<bool> {
        let mut blocks = self.blocks()?;
        let existed = if on {
            blocks.insert((tenant, blocker, blocked), now_ms)?.is_some()
        } else {
            blocks.remove((tenant, blocker, blocked))?.is_some()
        };
        Ok(existed)
    }

    /// Messages `sender` sent `recipient` while they were not friends.
    pub fn stranger_sends(&self, tenant: &str, sender: u64, recipient: u64) -> Result<u64> {
        Ok(self
            .stranger_table()?
            .get((tenant, sender, recipient))?
            .map(|v| v.value())
            .unwrap_or(0))
    }

    /// Counts one more such message.
    pub fn count_stranger_send(&self, tenant: &str, sender: u64, recipient: u64) -> Result<()> {
        let mut table = self.stranger_table()?;
        let n = table
            .get((tenant, sender, recipient))?
            .map(|v| v.value())
            .unwrap_or(0);
        table.insert((tenant, sender, recipient), n + 1)?;
        Ok(())
    }

    /// A group by id.
    pub fn group(&self, tenant: &str, id: u64) -> Result<Option<GroupRecord>> {
        self.groups()?
            .get((tenant, id))?
            .map(|v| decode(v.value()))
            .transpose()
    }

    /// A group id by its outside id.
    pub fn group_id_by_ext(&self, tenant: &str, ext: &str) -> Result<Option<u64>> {
        Ok(self.group_ext()?.get((tenant, ext))?.map(|v| v.value()))
    }

    /// Stores a group. A new one (id 0) gets the next group id; its outside id must be free
    /// ([`Error::Conflict`] otherwise, writing nothing).
    pub fn put_group(&self, tenant: &str, group: &mut GroupRecord) -> Result<()> {
        if group.id == 0 {
            if let Some(ext) = &group.ext_id {
                if self.group_ext()?.get((tenant, ext.as_str()))?.is_some() {
                    return Err(Error::Conflict(format!("group {ext} exists")));
                }
            }
            group.id = self.next_counter("next_group_id")?;
            if let Some(ext) = &group.ext_id {
                self.group_ext()?.insert((tenant, ext.as_str()), group.id)?;
            }
        }
        self.groups()?
            .insert((tenant, group.id), encode(group).as_slice())?;
        Ok(())
    }

    /// A membership.
    pub fn member(&self, tenant: &str, group: u64, user: u64) -> Result<Option<MemberRecord>> {
        self.members()?
            .get((tenant, group, user))?
            .map(|v| decode(v.value()))
            .transpose()
    }

    /// Stores a membership (a new one gets a row id) and indexes it under the user.
    pub fn put_member(&self, tenant: &str, group: u64, user: u64, member: &mut MemberRecord) -> Result<()> {
        if member.row_id == 0 {
            member.row_id = self.next_counter("next_member_row")?;
        }
        self.members()?
            .insert((tenant, group, user), encode(member).as_slice())?;
        self.user_groups()?.insert((tenant, user, group), ())?;
        Ok(())
    }

    /// Ends a membership and forgets the member's cursor in the group's conversation.
    /// Returns whether there was one.
    pub fn remove_member(&self, tenant: &str, group: u64, user: u64, conv: &str) -> Result<bool> {
        let existed = self.members()?.remove((tenant, group, user))?.is_some();
        self.user_groups()?.remove((tenant, user, group))?;
        self.cursors()?.remove((tenant, user, conv))?;
        Ok(existed)
    }

    /// A pending join request.
    pub fn join_request(&self, tenant: &str, group: u64, user: u64) -> Result<Option<JoinRequest>> {
        self.join_requests()?
            .get((tenant, group, user))?
            .map(|v| decode(v.value()))
            .transpose()
    }

    /// Stores a join request.
    pub fn put_join_request(&self, tenant: &str, group: u64, request: &JoinRequest) -> Result<()> {
        self.join_requests()?
            .insert((tenant, group, request.user), encode(request).as_slice())?;
        Ok(())
    }

    /// Removes a join request; returns whether there was one.
    pub fn remove_join_request(&self, tenant: &str, group: u64, user: u64) -> Result<bool> {
        Ok(self.join_requests()?.remove((tenant, group, user))?.is_some())
    }

    /// Sets a member's cursor to exactly these positions (a join starts it at the head).
    pub fn set_cursor(&self, tenant: &str, user: u64, conv: &str, cursor: Cursor) -> Result<()> {
        self.cursors()?
            .insert((tenant, user, conv), (cursor.delivered, cursor.read))?;
        Ok(())
    }

    /// A user's view of a conversation.
    pub fn conv_state(&self, tenant: &str, user: u64, conv: &str) -> Result<ConvState> {
        Ok(self
            .conv_states()?
            .get((tenant, user, conv))?
            .map(|v| decode(v.value()))
            .transpose()?
            .unwrap_or_default())
    }

    /// Stores a user's view of a conversation (the default removes the row).
    pub fn put_conv_state(&self, tenant: &str, user: u64, conv: &str, state: &ConvState) -> Result<()> {
        if *state == ConvState::default() {
            self.conv_states()?.remove((tenant, user, conv))?;
        } else {
            self.conv_states()?
                .insert((tenant, user, conv), encode(state).as_slice())?;
        }
        Ok(())
    }

    /// The number of a conversation, given one on first use.
    pub fn conv_number(&self, tenant: &str, conv: &str) -> Result<u64> {
        if let Some(n) = self.conv_nums()?.get((tenant, conv))?.map(|v| v.value()) {
            return Ok(n);
        }
        let n = self.next_counter("next_conv_number")?;
        self.conv_nums()?.insert((tenant, conv), n)?;
        self.num_convs()?.insert((tenant, n), conv)?;
        Ok(n)
    }

    /// A user's presence row: when their last session went and whether they hide it.
    pub fn presence(&self, tenant: &str, user: u64) -> Result<Presence> {
        let row = self.presence_table()?.get((tenant, user))?.map(|v| v.value());
        Ok(Presence::from_row(row))
    }

    /// Stores a user's presence row.
    pub fn put_presence(&self, tenant: &str, user: u64, p: Presence) -> Result<()> {
        self.presence_table()?
            .insert((tenant, user), (p.last_seen_ms, p.hidden))?;
        Ok(())
    }

    /// Stores a user setting.
    pub fn put_user_setting(
        &self,
        tenant: &str,
        user: u64,
        scope: u32,
        key: &str,
        value: &str,
    ) -> Result<()> {
        self.user_settings()?.insert((tenant, user, scope, key), value)?;
        Ok(())
    }

    /// Stores a tenant setting (a policy override).
    pub fn put_tenant_setting(&self, tenant: &str, id: u32, value: &str) -> Result<()> {
        self.tenant_settings()?.insert((tenant, id), value)?;
        Ok(())
    }

    /// A tenant's generic system setting.
    pub fn system_setting(&self, tenant: &str, id: u32) -> Result<Option<SettingRecord>> {
        let table = self.system_settings()?;
        let value = table.get((tenant, id))?;
        value.map(|v| decode(v.value())).transpose()
    }

    /// Stores a generic system setting (its value and description) of a tenant.
    pub fn put_system_setting(&self, tenant: &str, id: u32, setting: &SettingRecord) -> Result<()> {
        self.system_settings()?
            .insert((tenant, id), encode(setting).as_slice())?;
        Ok(())
    }

    /// Stores the metadata of a new upload, giving it the tenant's next file id. Refuses a
    /// path already taken with [`Error::Conflict`], writing nothing.
    pub fn insert_file(&self, file: &mut FileRecord) -> Result<()> {
        if self.file_paths()?.get(file.path.as_str())?.is_some() {
            return Err(Error::Conflict(format!("file {} exists", file.path)));
        }
        let tenant = file.tenant.as_str();
        file.id = self.next_counter(&format!("next_file_id:{tenant}"))?;
        self.files()?.insert((tenant, file.id), encode(file).as_slice())?;
        self.user_files()?.insert((tenant, file.owner, file.id), ())?;
        self.file_paths()?.insert(file.path.as_str(), (tenant, file.id))?;
        Ok(())
    }

    /// Stores a file record with the id it already has (an import); its counter is
    /// restored apart.
    pub fn restore_file(&self, file: &FileRecord) -> Result<()> {
        let tenant = file.tenant.as_str();
        self.files()?.insert((tenant, file.id), encode(file).as_slice())?;
        self.user_files()?.insert((tenant, file.owner, file.id), ())?;
        self.file_paths()?.insert(file.path.as_str(), (tenant, file.id))?;
        Ok(())
    }
}

/// Webhook endpoints and their outbox.
impl Tx<'_> {
    /// Stores a webhook endpoint; a new one (id 0) gets the next endpoint id.
    pub fn put_webhook(&self, hook: &mut WebhookRecord) -> Result<()> {
        if hook.id == 0 {
            hook.id = self.next_counter("next_webhook_id")?;
        }
        self.webhooks()?
            .insert((hook.tenant.as_str(), hook.id), encode(hook).as_slice())?;
        Ok(())
    }

    /// The webhook endpoints of `tenant`, in id order: read in the transaction that queues an
    /// event, so that an endpoint added or removed meanwhile is seen exactly as committed.
    pub fn endpoints_of(&self, tenant: &str) -> Result<Vec<WebhookRecord>> {
        let table = self.webhooks()?;
        let mut out = Vec::new();
        for entry in table.range((tenant, 0)..=(tenant, u64::MAX))? {
            out.push(decode(entry?.1.value())?);
        }
        Ok(out)
    }

    /// Removes a webhook endpoint with its waiting events and its dead letters; returns
    /// whether there was one.
    pub fn remove_webhook(&self, tenant: &str, id: u64) -> Result<bool> {
        if self.webhooks()?.remove((tenant, id))?.is_none() {
            return Ok(false);
        }
        let range = (tenant, id, 0)..=(tenant, id, u64::MAX);
        self.outbox()?.remove_range(range.clone())?;
        self.dead_letters()?.remove_range(range)?;
        Ok(true)
    }

    /// Queues `event` for endpoint `event.endpoint`, giving it the next event id.
    pub fn enqueue_event(&self, tenant: &str, event: &mut OutboxEvent) -> Result<()> {
        event.id = self.next_counter("next_webhook_event")?;
        self.outbox()?
            .insert((tenant, event.endpoint, event.id), encode(event).as_slice())?;
        Ok(())
    }

    /// Removes a delivered event; returns whether it was waiting.
    pub fn delivered_event(&self, tenant: &str, endpoint: u64, id: u64) -> Result<bool> {
        Ok(self.outbox()?.remove((tenant, endpoint, id))?.is_some())
    }

    /// Records a failed delivery of a waiting event: stored again as `event` says (its
    /// attempts and next try), or moved to the dead letters when `dead`. Returns whether it
    /// was waiting (an endpoint removed meanwhile took it away).
    pub fn failed_event(&self, tenant: &str, event: &OutboxEvent, dead: bool) -> Result<bool> {
        let key = (tenant, event.endpoint, event.id);
        if self.outbox()?.get(key)?.is_none() {
            return Ok(false);
        }
        if dead {
            self.outbox()?.remove(key)?;
            self.dead_letters()?.insert(key, encode(event).as_slice())?;
        } else {
            self.outbox()?.insert(key, encode(event).as_slice())?;
        }
        Ok(true)
    }

    /// Moves dead letters of an endpoint back to its outbox to be tried again from now
    /// (every one when `id` is `None`); returns how many.
    pub fn retry_dead_letters(
        &self,
        tenant: &str,
        endpoint: u64,
        id: Option<u64>,
        now_ms: u64,
    ) -> Result<usize> {
        let range = match id {
            Some(id) => (tenant, endpoint, id)..=(tenant, endpoint, id),
            None => (tenant, endpoint, 0)..=(tenant, endpoint, u64::MAX),
        };
        let mut events = Vec::new();
        let mut dead = self.dead_letters()?;
        for entry in dead.range(range.clone())? {
            events.push(decode::<OutboxEvent>(entry?.1.value())?);
        }
        dead.remove_range(range)?;
        drop(dead);
        for mut event in events.iter().cloned() {
            event.attempts = 0;
            event.next_ms = now_ms;
            self.outbox()?
                .insert((tenant, endpoint, event.id), encode(&event).as_slice())?;
        }
        Ok(events.len())
    }
}

/// Removes the rows of a name → time table whose time is before `now`; returns how many.
fn forget_before(table: &mut Recorded<'_, '_, &'static str, u64>, now: u64) -> Result<usize> {
    let expired: Vec<String> = table
        .iter()?
        .filter_map(|e| e.ok())
        .filter(|(_, until)| until.value() < now)
        .map(|(k, _)| k.value().to_owned())
        .collect();
    for key in &expired {
        table.remove(key.as_str())?;
    }
    Ok(expired.len())
}
