//! Model-based tests of the storage layer.
//!
//! proptest generates batches of writes (users with clashing usernames and uuids, message
//! appends with reused client ids, taken positions, cursor moves forwards and backwards,
//! revocations) over a few tenants and conversations whose names overlap. Each write goes
//! through the Writer exactly as a real caller would send it, and a `BTreeMap` model
//! predicts its answer. After every batch a fresh [`Snapshot`] must read back exactly the
//! model, and a snapshot opened before the batch must still read back the model as it was.
//! At the end the Writer's effect log, replayed into an empty database, must make the same
//! rows. Only the public API is used.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use parlor_storage::effects::encode_batch;
use parlor_storage::{
    ChatType, Cursor, EffectLog, Error, MessageRecord, Role, Snapshot, Store, Tx, UserRecord, WriterConfig,
};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError};
use tokio::sync::oneshot;

/// Tenant names; one is a prefix of the others, so a range that leaked would show.
const TENANTS: [&str; 3] = ["t", "t1", "t2"];
/// Conversation names, the same in every tenant; `g:1` is a prefix of `g:10`.
const CONVS: [&str; 3] = ["d:1:2", "g:1", "g:10"];
/// A small pool so that usernames clash.
const NAMES: [&str; 5] = ["alice", "bob", "carol", "dave", "eve"];
/// Senders and cursor owners are user ids `1..=MEMBERS`.
const MEMBERS: u64 = 4;

/// One generated write; indices are resolved against the constants and the model.
#[derive(Debug, Clone)]
enum Op {
    /// A new user; `uuid: Some(k)` takes a uuid from a small shared pool (clashes).
    CreateUser {
        tenant: usize,
        name: usize,
        uuid: Option<usize>,
    },
    /// An append at head + 1, after a dedup check when it carries a client id.
    Append {
        tenant: usize,
        conv: usize,
        sender: u64,
        cid: Option<usize>,
        len: usize,
    },
    /// An append at a position already taken: must be refused and write nothing.
    AppendTaken {
        tenant: usize,
        conv: usize,
        back: u64,
        sender: u64,
        cid: usize,
    },
    /// `ensure_cursor`.
    Ensure { tenant: usize, user: u64, conv: usize },
    /// `advance_cursor` with values that may lie behind the cursor.
    Advance {
        tenant: usize,
        user: u64,
        conv: usize,
        delivered: u64,
        read: u64,
    },
    /// Revokes an existing message (or tries a missing one when the timeline is empty).
    Revoke { tenant: usize, conv: usize, pick: usize },
}

/// What a write closure returns.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    User(u64),
    Appended,
    /// The dedup check found this message, so nothing was appended.
    Duplicate(Box<MessageRecord>),
    Cursor(Option<Cursor>),
    Done,
}

/// What the model predicts for one write.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    Ok(Outcome),
    Conflict,
    NotFound,
}

type Job = Box<dyn FnOnce(&Tx<'_>) -> parlor_storage::Result<Outcome> + Send>;

/// The reference model: every table as a `BTreeMap` with owned keys.
#[derive(Debug, Clone, Default)]
struct Model {
    next_user_id: u64,
    next_uuid: u64,
    next_message: u64,
    users: BTreeMap<(String, u64), UserRecord>,
    usernames: BTreeMap<(String, String), u64>,
    uuids: BTreeMap<(String, String), u64>,
    messages: BTreeMap<(String, String, u64), MessageRecord>,
    message_ids: BTreeMap<(String, String), (String, u64)>,
    dedup: BTreeMap<(String, u64, String), (String, u64)>,
    cursors: BTreeMap<(String, u64, String), Cursor>,
    /// Every uuid and message id ever generated, in any tenant, stored or refused.
    all_uuids: BTreeSet<String>,
    all_message_ids: BTreeSet<String>,
}

impl Model {
    /// A conversation's messages, oldest first.
    fn timeline(&self, tenant: &str, conv: &str) -> Vec<MessageRecord> {
        self.messages
            .range((tenant.to_owned(), conv.to_owned(), 0)..=(tenant.to_owned(), conv.to_owned(), u64::MAX))
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// Highest seq of a conversation, 0 when empty.
    fn head(&self, tenant: &str, conv: &str) -> u64 {
        self.timeline(tenant, conv).last().map_or(0, |m| m.seq)
    }

    /// Every head, as `startup_state` reports them.
    fn heads(&self) -> HashMap<(String, String), u64> {
        let mut heads = HashMap::new();
        for (t, c, seq) in self.messages.keys() {
            let head = heads.entry((t.clone(), c.clone())).or_insert(0);
            *head = (*head).max(*seq);
        }
        heads
    }

    fn user_by_index(
        &self,
        index: &BTreeMap<(String, String), u64>,
        tenant: &str,
        key: &str,
    ) -> Option<UserRecord> {
        let id = index.get(&(tenant.to_owned(), key.to_owned()))?;
        self.users.get(&(tenant.to_owned(), *id)).cloned()
    }
}

fn user_record(tenant: &str, username: &str, uuid: &str) -> UserRecord {
    UserRecord {
        id: 0,
        uuid: uuid.to_owned(),
        tenant: tenant.to_owned(),
        username: username.to_owned(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        nickname: format!("{username} of {tenant}"),
        avatar: String::new(),
        role: Role::User,
        status: 1,
        mobile: None,
        email: Some(format!("{username}@example.com")),
        gender: "unknown".to_owned(),
        birthday: None,
        bio: None,
        location: None,
        website: None,
        userset: "{}".to_owned(),
        invite_confirm: 1,
        device_id: None,
        uniplatform: "web".to_owned(),
        devicemodel: String::new(),
        deviceos: String::new(),
        devicebrand: String::new(),
        created_ms: 1_700_000_000_000,
        updated_ms: 1_700_000_000_000,
        last_login_ms: None,
    }
}

fn message_record(
    id: String,
    conv: &str,
    seq: u64,
    from: u64,
    cid: Option<String>,
    len: usize,
) -> MessageRecord {
    let group = conv.starts_with("g:");
    MessageRecord {
        id,
        seq,
        conv: conv.to_owned(),
        chat_type: if group { ChatType::Group } else { ChatType::Single },
        from_id: from,
        from_name: format!("user{from}"),
        from_avatar: String::new(),
        to_id: if group { 1 } else { 3 - from.min(2) },
        to_name: "peer".to_owned(),
        to_avatar: String::new(),
        kind: "text".to_owned(),
        data: format!("{{\"text\":\"{}\"}}", "x".repeat(len)),
        options: "{}".to_owned(),
        cid,
        create_time: 1_700_000_000_000 + seq,
        revoked: false,
        action: None,
    }
}

/// Turns one op into the closure a caller would send to the Writer and the model's
/// prediction of its answer, and applies the prediction to the model.
fn plan(m: &mut Model, op: &Op) -> (Job, Expect) {
    match *op {
        Op::CreateUser { tenant, name, uuid } => {
            let t = TENANTS[tenant];
            let uuid = match uuid {
                Some(k) => format!("shared-uuid-{k}"),
                None => {
                    m.next_uuid += 1;
                    format!("uuid-{}", m.next_uuid)
                }
            };
            m.all_uuids.insert(uuid.clone());
            let mut user = user_record(t, NAMES[name], &uuid);
            let taken = m.usernames.contains_key(&(t.to_owned(), user.username.clone()))
                || m.uuids.contains_key(&(t.to_owned(), uuid.clone()));
            let expect = if taken {
                Expect::Conflict
            } else {
                m.next_user_id += 1;
                let mut stored = user.clone();
                stored.id = m.next_user_id;
                m.usernames
                    .insert((t.to_owned(), stored.username.clone()), stored.id);
                m.uuids.insert((t.to_owned(), uuid), stored.id);
                m.users.insert((t.to_owned(), stored.id), stored);
                Expect::Ok(Outcome::User(m.next_user_id))
            };
            let job: Job = Box::new(move |tx| {
                tx.insert_user(&mut user)?;
                Ok(Outcome::User(user.id))
            });
            (job, expect)
        }
        Op::Append {
            tenant,
            conv,
            sender,
            cid,
            len,
        } => {
            let (t, c) = (TENANTS[tenant], CONVS[conv]);
            m.next_message += 1;
            let id = format!("m-{}", m.next_message);
            m.all_message_ids.insert(id.clone());
            let cid = cid.map(|k| format!("cid-{k}"));
            let msg = message_record(id, c, m.head(t, c) + 1, sender, cid.clone(), len);
            let hit = cid
                .as_ref()
                .and_then(|cid| m.dedup.get(&(t.to_owned(), sender, cid.clone())))
                .map(|(c, seq)| m.messages[&(t.to_owned(), c.clone(), *seq)].clone());
            let expect = match hit {
                Some(first) => Expect::Ok(Outcome::Duplicate(Box::new(first))),
                None => {
                    if let Some(cid) = &cid {
                        m.dedup
                            .insert((t.to_owned(), sender, cid.clone()), (c.to_owned(), msg.seq));
                    }
                    m.message_ids
                        .insert((t.to_owned(), msg.id.clone()), (c.to_owned(), msg.seq));
                    m.messages
                        .insert((t.to_owned(), c.to_owned(), msg.seq), msg.clone());
                    Expect::Ok(Outcome::Appended)
                }
            };
            let job: Job = Box::new(move |tx| {
                if let Some(cid) = &msg.cid {
                    if let Some(first) = tx.dedup(t, msg.from_id, cid)? {
                        return Ok(Outcome::Duplicate(Box::new(first)));
                    }
                }
                tx.append_message(t, &msg)?;
                Ok(Outcome::Appended)
            });
            (job, expect)
        }
        Op::AppendTaken {
            tenant,
            conv,
            back,
            sender,
            cid,
        } => {
            let (t, c) = (TENANTS[tenant], CONVS[conv]);
            let head = m.head(t, c);
            m.next_message += 1;
            let id = format!("m-{}", m.next_message);
            m.all_message_ids.insert(id.clone());
            let (seq, expect) = if head == 0 {
                // An empty timeline has no position to collide with: a no-op.
                (0, Expect::Ok(Outcome::Done))
            } else {
                (1 + back % head, Expect::Conflict)
            };
            let msg = message_record(id, c, seq, sender, Some(format!("cid-{cid}")), 10);
            let job: Job = Box::new(move |tx| {
                if msg.seq == 0 {
                    return Ok(Outcome::Done);
                }
                tx.append_message(t, &msg)?;
                Ok(Outcome::Appended)
            });
            (job, expect)
        }
        Op::Ensure { tenant, user, conv } => {
            let (t, c) = (TENANTS[tenant], CONVS[conv]);
            m.cursors.entry((t.to_owned(), user, c.to_owned())).or_default();
            let job: Job = Box::new(move |tx| {
                tx.ensure_cursor(t, user, c)?;
                Ok(Outcome::Done)
            });
            (job, Expect::Ok(Outcome::Done))
        }
        Op::Advance {
            tenant,
            user,
            conv,
            delivered,
            read,
        } => {
            let (t, c) = (TENANTS[tenant], CONVS[conv]);
            // Mostly within the timeline, sometimes one past it.
            let span = m.head(t, c) + 2;
            let (delivered, read) = (delivered % span, read % span);
            let key = (t.to_owned(), user, c.to_owned());
            // Only an existing cursor moves; a position for a conversation the user has no
            // cursor in is ignored and creates nothing.
            let next = m.cursors.get(&key).copied().map(|current| Cursor {
                // Each position only moves forward, independently of the other: a read
                // receipt does not mark unseen messages delivered.
                delivered: current.delivered.max(delivered),
                read: current.read.max(read),
            });
            if let Some(next) = next {
                m.cursors.insert(key, next);
            }
            let job: Job =
                Box::new(move |tx| Ok(Outcome::Cursor(tx.advance_cursor(t, user, c, delivered, read)?)));
            (job, Expect::Ok(Outcome::Cursor(next)))
        }
        Op::Revoke { tenant, conv, pick } => {
            let (t, c) = (TENANTS[tenant], CONVS[conv]);
            let timeline = m.timeline(t, c);
            let (msg, expect) = if timeline.is_empty() {
                m.next_message += 1;
                let id = format!("m-{}", m.next_message);
                m.all_message_ids.insert(id.clone());
                (message_record(id, c, 1, 1, None, 5), Expect::NotFound)
            } else {
                let mut msg = timeline[pick % timeline.len()].clone();
                msg.data.clear();
                msg.revoked = true;
                m.messages
                    .insert((t.to_owned(), c.to_owned(), msg.seq), msg.clone());
                (msg, Expect::Ok(Outcome::Done))
            };
            let job: Job = Box::new(move |tx| {
                tx.put_message(t, &msg)?;
                Ok(Outcome::Done)
            });
            (job, expect)
        }
    }
}

fn verdict(result: parlor_storage::Result<Outcome>) -> Expect {
    match result {
        Ok(outcome) => Expect::Ok(outcome),
        Err(Error::Conflict(_)) => Expect::Conflict,
        Err(Error::NotFound(_)) => Expect::NotFound,
        Err(e) => panic!("unexpected storage error: {e}"),
    }
}

/// The messages of `timeline` (oldest first) a history page should hold, newest first.
fn expected_page(
    timeline: &[MessageRecord],
    before: Option<u64>,
    after: Option<u64>,
    limit: usize,
) -> (Vec<MessageRecord>, Option<u64>) {
    let in_range = |seq: u64| after.is_none_or(|a| seq > a) && before.is_none_or(|b| seq < b);
    let messages: Vec<MessageRecord> = timeline
        .iter()
        .rev()
        .filter(|m| in_range(m.seq))
        .take(limit)
        .cloned()
        .collect();
    // A next page is offered exactly when older messages remain in the range.
    let next_before = messages
        .last()
        .filter(|oldest| timeline.iter().any(|m| in_range(m.seq) && m.seq < oldest.seq))
        .map(|oldest| oldest.seq);
    (messages, next_before)
}

/// Compares everything a snapshot can read with the model.
fn check(snap: &Snapshot, m: &Model) -> Result<(), TestCaseError> {
    for t in TENANTS {
        // Users, by id, username and uuid (ids and uuids of other tenants must miss).
        for id in 0..=m.next_user_id + 1 {
            prop_assert_eq!(
                snap.user(t, id).unwrap(),
                m.users.get(&(t.to_owned(), id)).cloned(),
                "user {}/{}",
                t,
                id
            );
        }
        for name in NAMES.iter().chain(&["", "alic", "alicee"]) {
            prop_assert_eq!(
                snap.user_by_username(t, name).unwrap(),
                m.user_by_index(&m.usernames, t, name),
                "username {}/{}",
                t,
                name
            );
        }
        for uuid in &m.all_uuids {
            prop_assert_eq!(
                snap.user_by_uuid(t, uuid).unwrap(),
                m.user_by_index(&m.uuids, t, uuid),
                "uuid {}/{}",
                t,
                uuid
            );
        }

        // Messages by id: ids are global, so another tenant's id must miss.
        for id in &m.all_message_ids {
            let want = m
                .message_ids
                .get(&(t.to_owned(), id.clone()))
                .map(|(c, seq)| m.messages[&(t.to_owned(), c.clone(), *seq)].clone());
            prop_assert_eq!(
                snap.message_by_id(t, id).unwrap(),
                want,
                "message id {}/{}",
                t,
                id
            );
        }

        for c in CONVS {
            let timeline = m.timeline(t, c);
            let head = m.head(t, c);
            prop_assert_eq!(snap.head(t, c).unwrap(), head, "head {}/{}", t, c);
            for seq in 0..=head + 1 {
                prop_assert_eq!(
                    snap.message(t, c, seq).unwrap(),
                    m.messages.get(&(t.to_owned(), c.to_owned(), seq)).cloned()
                );
            }

            // messages_after: oldest first, strictly after, at most limit.
            for after in [0, 1, head / 2, head.saturating_sub(1), head, head + 1, u64::MAX] {
                for limit in [0, 1, 3, usize::MAX] {
                    let want: Vec<_> = timeline
                        .iter()
                        .filter(|m| m.seq > after)
                        .take(limit)
                        .cloned()
                        .collect();
                    prop_assert_eq!(
                        snap.messages_after(t, c, after, limit).unwrap(),
                        want,
                        "messages_after {}/{} after {} limit {}",
                        t,
                        c,
                        after,
                        limit
                    );
                }
            }

            // Single history pages with every mix of bounds.
            let befores = [
                None,
                Some(1),
                Some(head / 2 + 1),
                Some(head),
                Some(head + 1),
                Some(u64::MAX),
            ];
            let afters = [None, Some(0), Some(head / 3), Some(head)];
            for before in befores {
                for after in afters {
                    for limit in [0, 1, 3, 100] {
                        let page = snap.history(t, c, before, after, limit).unwrap();
                        let (want, next_before) = expected_page(&timeline, before, after, limit);
                        let ctx = format!("history {t}/{c} before {before:?} after {after:?} limit {limit}");
                        prop_assert_eq!(&page.messages, &want, "{}", ctx);
                        prop_assert_eq!(page.next_before, next_before, "{}", ctx);
                        prop_assert_eq!(page.head, head, "{}", ctx);
                    }
                }
            }

            // Walking every page via next_before gives the whole range, newest first.
            for after in [None, Some(head / 3)] {
                for limit in [1, 2, 5] {
                    let mut walked = Vec::new();
                    let mut before = None;
                    for _ in 0..=head + 1 {
                        let page = snap.history(t, c, before, after, limit).unwrap();
                        prop_assert!(page.messages.len() <= limit);
                        walked.extend(page.messages);
                        match page.next_before {
                            Some(next) => {
                                prop_assert!(before.is_none_or(|b| next < b), "next_before must go back");
                                before = Some(next);
                            }
                            None => break,
                        }
                    }
                    let want: Vec<_> = timeline
                        .iter()
                        .rev()
                        .filter(|m| after.is_none_or(|a| m.seq > a))
                        .cloned()
                        .collect();
                    prop_assert_eq!(walked, want, "walk {}/{} after {:?} limit {}", t, c, after, limit);
                }
            }
        }

        // Cursors, one by one and per user (user ids around the members too).
        for user in 0..=MEMBERS + 1 {
            for c in CONVS {
                prop_assert_eq!(
                    snap.cursor(t, user, c).unwrap(),
                    m.cursors.get(&(t.to_owned(), user, c.to_owned())).copied(),
                    "cursor {}/{}/{}",
                    t,
                    user,
                    c
                );
            }
            let want: Vec<(String, Cursor)> = m
                .cursors
                .iter()
                .filter(|((ct, cu, _), _)| ct == t && *cu == user)
                .map(|((_, _, c), cursor)| (c.clone(), *cursor))
                .collect();
            prop_assert_eq!(
                snap.cursors_of(t, user).unwrap(),
                want,
                "cursors_of {}/{}",
                t,
                user
            );
        }
    }

    // Every head is its timeline's last seq; a restart rebuilds the cursors behind theirs.
    let heads = m.heads();
    for ((t, c), head) in &heads {
        prop_assert_eq!(snap.head(t, c).unwrap(), *head, "head of {}/{}", t, c);
    }
    let state = snap.startup_state().unwrap();
    let mut want: Vec<(String, u64, String, u64)> = m
        .cursors
        .iter()
        .filter(|((t, _, c), cursor)| {
            heads.get(&(t.clone(), c.clone())).copied().unwrap_or(0) > cursor.delivered
        })
        .map(|((t, u, c), cursor)| (t.clone(), *u, c.clone(), cursor.delivered))
        .collect();
    want.sort();
    let mut pending = state.pending;
    pending.sort();
    prop_assert_eq!(pending, want);
    prop_assert!(state.revoked_tokens.is_empty());
    Ok(())
}

fn op() -> impl Strategy<Value = Op> {
    let tenant = 0..TENANTS.len();
    let conv = 0..CONVS.len();
    let member = 1..=MEMBERS;
    prop_oneof![
        2 => (tenant.clone(), 0..NAMES.len(), prop::option::weighted(0.2, 0..3usize))
            .prop_map(|(tenant, name, uuid)| Op::CreateUser { tenant, name, uuid }),
        6 => (tenant.clone(), conv.clone(), member.clone(), prop::option::weighted(0.5, 0..4usize), 60..140usize)
            .prop_map(|(tenant, conv, sender, cid, len)| Op::Append { tenant, conv, sender, cid, len }),
        1 => (tenant.clone(), conv.clone(), any::<u64>(), member.clone(), 0..4usize)
            .prop_map(|(tenant, conv, back, sender, cid)| Op::AppendTaken { tenant, conv, back, sender, cid }),
        1 => (tenant.clone(), 0..=MEMBERS + 1, conv.clone())
            .prop_map(|(tenant, user, conv)| Op::Ensure { tenant, user, conv }),
        3 => (tenant.clone(), member, conv.clone(), 0..32u64, 0..32u64)
            .prop_map(|(tenant, user, conv, delivered, read)| Op::Advance { tenant, user, conv, delivered, read }),
        1 => (tenant, conv, 0..64usize).prop_map(|(tenant, conv, pick)| Op::Revoke { tenant, conv, pick }),
    ]
}

/// Batches of ops; `true` sends a batch's writes all at once with `submit` (so that they
/// share transactions), `false` one `write_blocking` after another.
fn batches() -> impl Strategy<Value = Vec<(bool, Vec<Op>)>> {
    prop::collection::vec((any::<bool>(), prop::collection::vec(op(), 1..16)), 1..6)
}

fn run(batches: Vec<(bool, Vec<Op>)>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    // Every committed batch's effects, as a replicated log would carry them.
    let log = Arc::new(Mutex::new(Vec::new()));
    let kept = log.clone();
    let config = WriterConfig {
        effect_log: Some(EffectLog::new(move |effects| {
            let mut kept = kept.lock().unwrap();
            kept.push(encode_batch(effects));
            Ok(kept.len() as u64)
        })),
        ..WriterConfig::default()
    };
    let store = Store::open(dir.path().join("parlor.redb"), config).unwrap();
    let mut model = Model::default();
    for (grouped, ops) in batches {
        let before = store.snapshot().unwrap();
        let model_before = model.clone();
        if grouped {
            let mut waiting: Vec<(oneshot::Receiver<parlor_storage::Result<Outcome>>, Expect, Op)> =
                Vec::new();
            for op in ops {
                let (job, expect) = plan(&mut model, &op);
                waiting.push((store.writer().submit(job).unwrap(), expect, op));
            }
            for (rx, expect, op) in waiting {
                let got = verdict(rx.blocking_recv().expect("the writer answers"));
                prop_assert_eq!(got, expect, "{:?}", op);
            }
        } else {
            for op in ops {
                let (job, expect) = plan(&mut model, &op);
                let got = verdict(store.writer().write_blocking(job));
                prop_assert_eq!(got, expect, "{:?}", op);
            }
        }
        check(&store.snapshot().unwrap(), &model)?;
        // A snapshot taken before the batch still reads the state it started from.
        check(&before, &model_before)?;
    }
    // Replayed into an empty database, the log makes the same rows.
    let replica = Store::open(dir.path().join("replica.redb"), WriterConfig::default()).unwrap();
    let batches = std::mem::take(&mut *log.lock().unwrap());
    replica
        .writer()
        .write_blocking(move |tx| {
            for (at, batch) in (1..).zip(&batches) {
                assert!(tx.apply_logged(at, batch)?, "record {at} applied once");
            }
            Ok(())
        })
        .unwrap();
    let (copy, original) = (replica.snapshot().unwrap(), store.snapshot().unwrap());
    prop_assert!(
        copy.rows().unwrap() == original.rows().unwrap(),
        "the replica's rows differ"
    );
    prop_assert_eq!(copy.log_applied().unwrap(), original.log_applied().unwrap());
    check(&replica.snapshot().unwrap(), &model)?;
    replica.shutdown();
    store.shutdown();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        // Saved failures are replayed first, and a new one is saved, from the file beside
        // this one: `model.proptest-regressions`.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn store_matches_model(batches in batches()) {
        run(batches)?;
    }
}

/// The case saved in `model.proptest-regressions`, run on its own: one append of 60 bytes
/// to a direct conversation, written alone.
#[test]
fn saved_regression_one_append_to_a_direct_conversation() {
    let batches = vec![(
        false,
        vec![Op::Append {
            tenant: 0,
            conv: 0,
            sender: 1,
            cid: None,
            len: 60,
        }],
    )];
    run(batches).unwrap();
}

/// A fixed sequence covering each kind of refusal once, so a regression shows without
/// relying on the generator.
#[test]
fn refusals_write_nothing() {
    let ops = vec![
        Op::CreateUser {
            tenant: 0,
            name: 0,
            uuid: Some(0),
        },
        Op::CreateUser {
            tenant: 0,
            name: 0,
            uuid: None,
        }, // username taken
        Op::CreateUser {
            tenant: 0,
            name: 1,
            uuid: Some(0),
        }, // uuid taken
        Op::CreateUser {
            tenant: 1,
            name: 0,
            uuid: Some(0),
        }, // fine in another tenant
        Op::Append {
            tenant: 0,
            conv: 0,
            sender: 1,
            cid: Some(0),
            len: 100,
        },
        Op::Append {
            tenant: 0,
            conv: 0,
            sender: 1,
            cid: Some(0),
            len: 100,
        }, // duplicate cid
        Op::Append {
            tenant: 1,
            conv: 0,
            sender: 1,
            cid: Some(0),
            len: 100,
        }, // other tenant
        Op::AppendTaken {
            tenant: 0,
            conv: 0,
            back: 0,
            sender: 2,
            cid: 1,
        },
        Op::Revoke {
            tenant: 0,
            conv: 1,
            pick: 0,
        }, // nothing to revoke
        Op::Advance {
            tenant: 0,
            user: 1,
            conv: 0,
            delivered: 1,
            read: 1,
        },
        Op::Advance {
            tenant: 0,
            user: 1,
            conv: 0,
            delivered: 0,
            read: 0,
        }, // backwards
        Op::Revoke {
            tenant: 0,
            conv: 0,
            pick: 0,
        },
        Op::Append {
            tenant: 0,
            conv: 0,
            sender: 2,
            cid: Some(1),
            len: 100,
        },
    ];
    run(vec![(false, ops.clone()), (true, ops)]).unwrap();
}
