//! Whole-database copies: [`Snapshot::dump`] walks every table inside one read transaction
//! and hands out [`DumpRecord`]s, and [`Tx::load`] writes them back into an empty database
//! exactly as they were (ids, seqs, counters, indexes), so that a server started on the copy
//! behaves like the original. The records are serde types; the text format is the caller's.

use redb::{ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode};
use crate::records::{
    ApplyRecord, ConvState, FileRecord, FriendRecord, GroupRecord, JoinRequest, MemberRecord, MessageRecord,
    Presence, SettingRecord, UserRecord, WebhookRecord,
};
use crate::tables::*;
use crate::{Error, Result, Snapshot, Tx};

/// One row of a copy. Rows come in dependency order: counters, users, devices, social rows,
/// groups and members, conversations (numbers, states, cursors, heads), messages, settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DumpRecord {
    /// A database-wide counter (`next_user_id`, ...): ids are unique across tenants.
    Counter { name: String, value: u64 },
    /// A user, with its argon2 hash so that logins survive.
    User(UserRecord),
    /// The visitor bound to a device.
    Device {
        tenant: String,
        device: String,
        user: u64,
    },
    /// One side of a friendship.
    Friend {
        tenant: String,
        user: u64,
        friend: u64,
        #[serde(flatten)]
        record: FriendRecord,
    },
    /// A friend application.
    Application {
        tenant: String,
        #[serde(flatten)]
        record: ApplyRecord,
    },
    /// `blocker` refuses `blocked`'s messages since `at_ms`.
    Block {
        tenant: String,
        blocker: u64,
        blocked: u64,
        at_ms: u64,
    },
    /// Messages sent to a stranger (the `chatset` quota).
    StrangerSends {
        tenant: String,
        sender: u64,
        recipient: u64,
        count: u64,
    },
    /// A group.
    Group {
        tenant: String,
        #[serde(flatten)]
        record: GroupRecord,
    },
    /// A membership.
    Member {
        tenant: String,
        group: u64,
        user: u64,
        #[serde(flatten)]
        record: MemberRecord,
    },
    /// A pending request to join a group.
    JoinRequest {
        tenant: String,
        group: u64,
        #[serde(flatten)]
        record: JoinRequest,
    },
    /// The number the chat-room face names a conversation by.
    ConversationNumber {
        tenant: String,
        conv: String,
        number: u64,
    },
    /// A user's own view of a conversation (pinned, archived, deleted).
    ConversationState {
        tenant: String,
        user: u64,
        conv: String,
        #[serde(flatten)]
        state: ConvState,
    },
    /// A member's delivered and read positions.
    Cursor {
        tenant: String,
        user: u64,
        conv: String,
        delivered: u64,
        read: u64,
    },
    /// A conversation's head seq: the last seq of its timeline, written for readers of a
    /// copy (an import restores heads with the messages and reads nothing from this row).
    Head { tenant: String, conv: String, seq: u64 },
    /// A message of a timeline (nested: a message has a `kind` of its own).
    Message { tenant: String, message: MessageRecord },
    /// A user setting (the admin face's).
    UserSetting {
        tenant: String,
        user: u64,
        scope: u32,
        key: String,
        value: String,
    },
    /// A tenant's policy override.
    TenantSetting { tenant: String, id: u32, value: String },
    /// A tenant's generic system setting, with its description.
    SystemSetting {
        tenant: String,
        id: u32,
        #[serde(flatten)]
        setting: SettingRecord,
    },
    /// A revoked token id and its expiry (seconds); database-wide.
    RevokedToken { jti: String, exp: u64 },
    /// The metadata of an uploaded file (the bytes stay in the object store).
    File(FileRecord),
    /// A webhook endpoint, with its secret (events waiting for it are not copied).
    Webhook(WebhookRecord),
    /// When a user was last seen and whether they hide it.
    Presence {
        tenant: String,
        user: u64,
        #[serde(flatten)]
        presence: Presence,
    },
}

/// Iterates a whole table, binding each key and value; `$body` returns a `Result<()>`.
macro_rules! each {
    ($txn:expr, $table:expr, |$k:pat_param, $v:pat_param| $body:expr) => {
        for entry in $txn.open_table($table)?.iter()? {
            let (k, v) = entry?;
            let $k = k.value();
            let $v = v.value();
            $body?;
        }
    };
}

impl Snapshot {
    /// The tenants that have users or settings, in order.
    pub fn tenants(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        let users = self.txn.open_table(USERS)?;
        let mut from: Option<String> = None;
        loop {
            let next = match &from {
                None => users.first()?.map(|(k, _)| k.value().0.to_owned()),
                Some(t) => {
                    let mut range = users.range((t.as_str(), u64::MAX)..)?;
                    let mut found = None;
                    for entry in range.by_ref() {
                        let (key, _) = entry?;
                        let tenant = key.value().0;
                        if tenant != t {
                            found = Some(tenant.to_owned());
                            break;
                        }
                    }
                    found
                }
            };
            match next {
                Some(t) => {
                    out.push(t.clone());
                    from = Some(t);
                }
                None => break,
            }
        }
        for (tenant, _, _) in self.all_tenant_settings()? {
            if !out.contains(&tenant) {
                out.push(tenant);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Whether the database holds no row at all (a fresh file).
    pub fn is_empty(&self) -> Result<bool> {
        macro_rules! empty {
            ($($t:expr),*) => {{
                let mut rows = 0;
                $(rows += self.txn.open_table($t)?.len()?;)*
                rows == 0
            }};
        }
        // A new database holds its own id and nothing else in `META`.
        let mut counters = 0;
        for row in self.txn.open_table(META)?.iter()? {
            if row?.0.value() != crate::tables::DATABASE_ID {
                counters += 1;
            }
        }
        Ok(counters == 0
            && empty!(
                USERS,
                USERNAMES,
                USER_UUIDS,
                DEVICES,
                MESSAGES,
                MESSAGE_IDS,
                DEDUP,
                RECENT_CIDS,
                CURSORS,
                FRIENDS,
                APPLIES,
                APPLIES_TO,
                APPLY_PAIRS,
                BLOCKS,
                STRANGER_SENDS,
                GROUPS,
                GROUP_EXT_IDS,
                MEMBERS,
                USER_GROUPS,
                JOIN_REQUESTS,
                CONV_STATES,
                CONV_NUMS,
                NUM_CONVS,
                USER_SETTINGS,
                TENANT_SETTINGS,
                SYSTEM_SETTINGS,
                REVOKED_TOKENS,
                FILES,
                USER_FILES,
                FILE_PATHS,
                USER_GATES,
                WEBHOOKS,
                WEBHOOK_OUTBOX,
                WEBHOOK_DEAD,
                PRESENCE
            ))
    }

    /// Hands every row of `tenant` (every tenant when `None`) to `emit`, in the order of
    /// [`DumpRecord`], from this one read transaction. Counters and revoked tokens are
    /// database-wide and always included. Stops at the first error `emit` returns.
    pub fn dump(&self, tenant: Option<&str>, mut emit: impl FnMut(DumpRecord) -> Result<()>) -> Result<()> {
        let txn = &self.txn;
        let mine = |t: &str| tenant.is_none_or(|want| want == t);
        // The database's own id is not a counter to carry: a copy is another database.
        each!(txn, META, |name, value| if name == crate::tables::DATABASE_ID {
            Ok(())
        } else {
            emit(DumpRecord::Counter {
                name: name.to_owned(),
                value,
            })
        });
        each!(txn, USERS, |(t, _), v| if mine(t) {
            emit(DumpRecord::User(decode(v)?))
        } else {
            Ok(())
        });
        each!(txn, DEVICES, |(t, device), user| if mine(t) {
            emit(DumpRecord::Device {
                tenant: t.to_owned(),
                device: device.to_owned(),
                user,
            })
        } else {
            Ok(())
        });
        each!(txn, FRIENDS, |(t, user, friend), v| if mine(t) {
            emit(DumpRecord::Friend {
                tenant: t.to_owned(),
                user,
                friend,
                record: decode(v)?,
            })
        } else {
            Ok(())
        });
        each!(txn, APPLIES, |(t, _), v| if mine(t) {
            emit(DumpRecord::Application {
                tenant: t.to_owned(),
                record: decode(v)?,
            })
        } else {
            Ok(())
        });
        each!(txn, BLOCKS, |(t, blocker, blocked), at_ms| if mine(t) {
            emit(DumpRecord::Block {
                tenant: t.to_owned(),
                blocker,
                blocked,
                at_ms,
            })
        } else {
            Ok(())
        });
        each!(txn, STRANGER_SENDS, |(t, sender, recipient), count| if mine(t) {
            emit(DumpRecord::StrangerSends {
                tenant: t.to_owned(),
                sender,
                recipient,
                count,
            })
        } else {
            Ok(())
        });
        each!(txn, GROUPS, |(t, _), v| if mine(t) {
            emit(DumpRecord::Group {
                tenant: t.to_owned(),
                record: decode(v)?,
            })
        } else {
            Ok(())
        });
        each!(txn, MEMBERS, |(t, group, user), v| if mine(t) {
            emit(DumpRecord::Member {
                tenant: t.to_owned(),
                group,
                user,
                record: decode(v)?,
            })
        } else {
            Ok(())
        });
        each!(txn, JOIN_REQUESTS, |(t, group, _), v| if mine(t) {
            emit(DumpRecord::JoinRequest {
                tenant: t.to_owned(),
                group,
                record: decode(v)?,
            })
        } else {
            Ok(())
        });
        each!(txn, CONV_NUMS, |(t, conv), number| if mine(t) {
            emit(DumpRecord::ConversationNumber {
                tenant: t.to_owned(),
                conv: conv.to_owned(),
                number,
            })
        } else {
            Ok(())
        });
        each!(txn, CONV_STATES, |(t, user, conv), v| if mine(t) {
            emit(DumpRecord::ConversationState {
                tenant: t.to_owned(),
                user,
                conv: conv.to_owned(),
                state: decode(v)?,
            })
        } else {
            Ok(())
        });
        each!(txn, CURSORS, |(t, user, conv), (delivered, read)| if mine(t) {
            emit(DumpRecord::Cursor {
                tenant: t.to_owned(),
                user,
                conv: conv.to_owned(),
                delivered,
                read,
            })
        } else {
            Ok(())
        });
        // Heads are not stored: each is the last seq of its timeline, found in one pass
        // over the timelines' keys (in order, so a conversation's last key comes before the
        // next conversation's first).
        let mut last: Option<(String, String, u64)> = None;
        for entry in txn.open_table(MESSAGES)?.iter()? {
            let key = entry?.0;
            let (t, conv, seq) = key.value();
            if !mine(t) {
                continue;
            }
            match &mut last {
                Some((lt, lc, head)) if lt == t && lc == conv => *head = seq,
                _ => {
                    if let Some((tenant, conv, seq)) = last.replace((t.to_owned(), conv.to_owned(), seq)) {
                        emit(DumpRecord::Head { tenant, conv, seq })?;
                    }
                }
            }
        }
        if let Some((tenant, conv, seq)) = last {
            emit(DumpRecord::Head { tenant, conv, seq })?;
        }
        each!(txn, MESSAGES, |(t, _, _), v| if mine(t) {
            emit(DumpRecord::Message {
                tenant: t.to_owned(),
                message: decode(v)?,
            })
        } else {
            Ok(())
        });
        each!(txn, USER_SETTINGS, |(t, user, scope, key), value| if mine(t) {
            emit(DumpRecord::UserSetting {
                tenant: t.to_owned(),
                user,
                scope,
                key: key.to_owned(),
                value: value.to_owned(),
            })
        } else {
            Ok(())
        });
        each!(txn, PRESENCE, |(t, user), (last_seen_ms, hidden)| if mine(t) {
            emit(DumpRecord::Presence {
                tenant: t.to_owned(),
                user,
                presence: Presence { last_seen_ms, hidden },
            })
        } else {
            Ok(())
        });
        each!(txn, TENANT_SETTINGS, |(t, id), value| if mine(t) {
            emit(DumpRecord::TenantSetting {
                tenant: t.to_owned(),
                id,
                value: value.to_owned(),
            })
        } else {
            Ok(())
        });
        each!(txn, SYSTEM_SETTINGS, |(t, id), v| if mine(t) {
            emit(DumpRecord::SystemSetting {
                tenant: t.to_owned(),
                id,
                setting: decode(v)?,
            })
        } else {
            Ok(())
        });
        each!(txn, REVOKED_TOKENS, |jti, exp| emit(DumpRecord::RevokedToken {
            jti: jti.to_owned(),
            exp
        }));
        each!(txn, FILES, |(t, _), v| if mine(t) {
            emit(DumpRecord::File(decode(v)?))
        } else {
            Ok(())
        });
        each!(txn, WEBHOOKS, |(t, _), v| if mine(t) {
            emit(DumpRecord::Webhook(decode(v)?))
        } else {
            Ok(())
        });
        Ok(())
    }
}

impl Tx<'_> {
    /// Writes one row of a copy as it was, with its indexes. A row that collides with one
    /// already there (a taken username, id or position) is refused with [`Error::Conflict`].
    pub fn load(&self, record: &DumpRecord) -> Result<()> {
        match record {
            DumpRecord::Counter { name, .. } if name == crate::tables::DATABASE_ID => {}
            DumpRecord::Counter { name, value } => {
                let mut meta = self.meta()?;
                let current = meta.get(name.as_str())?.map(|v| v.value()).unwrap_or(0);
                meta.insert(name.as_str(), current.max(*value))?;
            }
            DumpRecord::User(user) => {
                if user.id == 0 {
                    return Err(Error::Conflict("a user without an id".into()));
                }
                self.insert_user(&mut user.clone())?;
            }
            DumpRecord::Device { tenant, device, user } => {
                self.devices()?
                    .insert((tenant.as_str(), device.as_str()), *user)?;
            }
            DumpRecord::Friend {
                tenant,
                user,
                friend,
                record,
            } => {
                self.friends()?
                    .insert((tenant.as_str(), *user, *friend), encode(record).as_slice())?;
            }
            DumpRecord::Application { tenant, record } => {
                let t = tenant.as_str();
                if self
                    .applies()?
                    .insert((t, record.id), encode(record).as_slice())?
                    .is_some()
                {
                    return Err(Error::Conflict(format!("application {} exists", record.id)));
                }
                self.applies_to()?.insert((t, record.target, record.id), ())?;
                // The pair names its latest application: the highest id.
                let mut pairs = self.apply_pairs()?;
                let latest = pairs
                    .get((t, record.applicant, record.target))?
                    .map(|v| v.value());
                if latest.is_none_or(|id| id < record.id) {
                    pairs.insert((t, record.applicant, record.target), record.id)?;
                }
            }
            DumpRecord::Block {
                tenant,
                blocker,
                blocked,
                at_ms,
            } => {
                self.blocks()?
                    .insert((tenant.as_str(), *blocker, *blocked), *at_ms)?;
            }
            DumpRecord::StrangerSends {
                tenant,
                sender,
                recipient,
                count,
            } => {
                self.stranger_table()?
                    .insert((tenant.as_str(), *sender, *recipient), *count)?;
            }
            DumpRecord::Group { tenant, record } => {
                let t = tenant.as_str();
                if self
                    .groups()?
                    .insert((t, record.id), encode(record).as_slice())?
                    .is_some()
                {
                    return Err(Error::Conflict(format!("group {} exists", record.id)));
                }
                if let Some(ext) = &record.ext_id {
                    self.group_ext()?.insert((t, ext.as_str()), record.id)?;
                }
            }
            DumpRecord::Member {
                tenant,
                group,
                user,
                record,
            } => {
                self.put_member(tenant, *group, *user, &mut record.clone())?;
            }
            DumpRecord::JoinRequest {
                tenant,
                group,
                record,
            } => {
                self.put_join_request(tenant, *group, record)?;
            }
            DumpRecord::ConversationNumber { tenant, conv, number } => {
                self.conv_nums()?
                    .insert((tenant.as_str(), conv.as_str()), *number)?;
                self.num_convs()?
                    .insert((tenant.as_str(), *number), conv.as_str())?;
            }
            DumpRecord::ConversationState {
                tenant,
                user,
                conv,
                state,
            } => self.put_conv_state(tenant, *user, conv, state)?,
            DumpRecord::Cursor {
                tenant,
                user,
                conv,
                delivered,
                read,
            } => self.set_cursor(
                tenant,
                *user,
                conv,
                crate::Cursor {
                    delivered: *delivered,
                    read: *read,
                },
            )?,
            // A head is its timeline's last seq, restored with the messages.
            DumpRecord::Head { .. } => {}
            DumpRecord::Message { tenant, message } => self.load_message(tenant, message)?,
            DumpRecord::UserSetting {
                tenant,
                user,
                scope,
                key,
                value,
            } => self.put_user_setting(tenant, *user, *scope, key, value)?,
            DumpRecord::Presence {
                tenant,
                user,
                presence,
            } => self.put_presence(tenant, *user, *presence)?,
            DumpRecord::TenantSetting { tenant, id, value } => self.put_tenant_setting(tenant, *id, value)?,
            DumpRecord::SystemSetting { tenant, id, setting } => {
                self.put_system_setting(tenant, *id, setting)?
            }
            DumpRecord::RevokedToken { jti, exp } => self.revoke_token(jti, *exp)?,
            DumpRecord::File(file) => self.restore_file(file)?,
            DumpRecord::Webhook(hook) => {
                if hook.id == 0 {
                    return Err(Error::Conflict("a webhook without an id".into()));
                }
                self.put_webhook(&mut hook.clone())?
            }
        }
        Ok(())
    }
}
