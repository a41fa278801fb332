//! Deciding a group command: who may do it and what it writes. [`plan`] is a pure
//! function of the group's [`Facts`] (record, members, pending requests, member limit,
//! locale, clock reading): it reads no store and starts no write, so every rule of
//! membership can be checked on plain values. The Group actor applies what it decides.

use std::collections::{HashMap, HashSet};

use parlor_storage::{GroupRecord, JoinRequest, MemberRecord};

use crate::messages::{GroupOp, GroupOutcome, Party};
use crate::notices::{self, Locale};
use crate::SendError;

/// What a decision about a group looks at.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub record: &'a GroupRecord,
    pub members: &'a HashMap<u64, MemberRecord>,
    /// Users whose request to join waits for the owner.
    pub requests: &'a HashSet<u64>,
    /// Most members of a group (the tenant's policy).
    pub max_members: usize,
    /// The language of the notice.
    pub locale: Locale,
    /// The time of the decision, ms.
    pub now: u64,
}

/// The `systemNotice` a change writes into the group's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Its `actionType` (`groupRename`, `groupJoin`, ...).
    pub action: &'static str,
    pub text: String,
}

impl Notice {
    fn new(action: &'static str, text: String) -> Self {
        Notice { action, text }
    }
}

/// The writes of one group change, applied in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// The group's record as it becomes.
    pub record: Option<GroupRecord>,
    /// `(user, inviter)` of the users who join.
    pub joiners: Vec<(u64, u64)>,
    pub leavers: Vec<u64>,
    /// A request to join, waiting for the owner.
    pub request: Option<JoinRequest>,
    /// The user whose pending request is answered.
    pub drop_request: Option<u64>,
    /// `(member, nickname)`.
    pub nickname: Option<(u64, String)>,
    pub notice: Option<Notice>,
}

impl Facts<'_> {
    fn room_for(&self, more: usize) -> Result<(), SendError> {
        if self.members.len() + more > self.max_members {
            return Err(SendError::Full {
                limit: self.max_members,
            });
        }
        Ok(())
    }

    /// The members, by id.
    fn member_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.members.keys().copied().collect();
        ids.sort_unstable();
        ids
    }
}

/// Decides a command by `by` on the group `facts` describe: the writes it makes and what
/// it answers, or the refusal. Pure: it reads nothing else and changes nothing.
pub fn plan(facts: &Facts<'_>, by: &Party, op: GroupOp) -> Result<(Change, GroupOutcome), SendError> {
    let member = facts.members.contains_key(&by.id);
    let owner = facts.record.owner == by.id;
    let only_owner = |what: &str| SendError::Forbidden(format!("only the group owner may {what}"));
    let mut change = Change::default();
    let now = facts.now;
    let outcome = match op {
        GroupOp::Rename(name) => {
            if !owner {
                return Err(only_owner("rename the group"));
            }
            let mut r = facts.record.clone();
            r.name = name.clone();
            r.updated_ms = now;
            change.record = Some(r);
            change.notice = Some(Notice::new(
                "groupRename",
                notices::group_renamed(facts.locale, &by.name, &name),
            ));
            GroupOutcome::Done
        }
        GroupOp::SetRemark(remark) => {
            if !owner {
                return Err(only_owner("change the group notice"));
            }
            let mut r = facts.record.clone();
            r.remark = remark.clone();
            r.updated_ms = now;
            change.record = Some(r);
            change.notice = Some(Notice::new(
                "groupRemark",
                notices::group_remark(facts.locale, &by.name, &remark),
            ));
            GroupOutcome::Done
        }
        GroupOp::SetNickname(nickname) => {
            if !member {
                return Err(SendError::Forbidden("you are not a member of this group".into()));
            }
            change.nickname = Some((by.id, nickname));
            GroupOutcome::Done
        }
        GroupOp::SetJoinRule(rule) => {
            if !owner {
                return Err(only_owner("change the join setting"));
            }
            let mut r = facts.record.clone();
            r.invite_confirm = rule;
            r.updated_ms = now;
            change.record = Some(r);
            GroupOutcome::Done
        }
        GroupOp::Invite { user, desc } => {
            if facts.members.contains_key(&user.id) {
                return Err(SendError::Conflict(format!(
                    "user {} is already a member",
                    user.id
                )));
            }
            let asking_self = user.id == by.id;
            if !member && !asking_self {
                return Err(SendError::Forbidden("only members may invite".into()));
            }
            if owner || facts.record.invite_confirm == 0 {
                facts.room_for(1)?;
                let inviter = if asking_self { 0 } else { by.id };
                change.joiners.push((user.id, inviter));
                if facts.requests.contains(&user.id) {
                    change.drop_request = Some(user.id);
                }
                let text = if asking_self {
                    notices::joined(facts.locale, &user.name)
                } else {
                    notices::invited(facts.locale, &by.name, &user.name)
                };
                change.notice = Some(Notice::new("groupJoin", text));
                GroupOutcome::Joined
            } else {
                if facts.requests.contains(&user.id) {
                    return Err(SendError::Conflict(format!(
                        "user {} already waits for approval",
                        user.id
                    )));
                }
                change.request = Some(JoinRequest {
                    user: user.id,
                    inviter: if asking_self { 0 } else { by.id },
                    desc,
                    created_ms: now,
                });
                GroupOutcome::Requested
            }
        }
        GroupOp::Approve { user: who, agree } => {
            let user = who.id;
            if !owner {
                return Err(only_owner("answer join requests"));
            }
            if !facts.requests.contains(&user) {
                return Err(SendError::NotFound(format!(
                    "user {user} has no pending request to join"
                )));
            }
            change.drop_request = Some(user);
            if agree {
                if facts.members.contains_key(&user) {
                    return Ok((change, GroupOutcome::Done));
                }
                facts.room_for(1)?;
                change.joiners.push((user, by.id));
                change.notice = Some(Notice::new(
                    "groupJoin",
                    notices::approved(facts.locale, &by.name, &who.name),
                ));
                GroupOutcome::Joined
            } else {
                GroupOutcome::Done
            }
        }
        GroupOp::Remove(who) => {
            let user = who.id;
            if !owner {
                return Err(only_owner("remove members"));
            }
            if user == by.id {
                return Err(SendError::Invalid(
                    "the owner cannot remove themselves; dissolve the group".into(),
                ));
            }
            if !facts.members.contains_key(&user) {
                return Err(SendError::NotFound(format!("user {user} is not a member")));
            }
            change.leavers.push(user);
            change.notice = Some(Notice::new(
                "groupRemove",
                notices::removed(facts.locale, &by.name, &who.name),
            ));
            GroupOutcome::Done
        }
        GroupOp::Leave => {
            if !member {
                return Err(SendError::Forbidden("you are not a member of this group".into()));
            }
            if owner {
                let mut r = facts.record.clone();
                r.status = 0;
                r.updated_ms = now;
                change.record = Some(r);
                change.leavers = facts.member_ids();
                change.notice = Some(Notice::new(
                    "groupDissolve",
                    notices::dissolved(facts.locale, &by.name),
                ));
                GroupOutcome::Dissolved
            } else {
                change.leavers.push(by.id);
                change.notice = Some(Notice::new("groupQuit", notices::quit(facts.locale, &by.name)));
                GroupOutcome::Quit
            }
        }
        GroupOp::ReplaceMembers(list) => {
            if !owner {
                return Err(only_owner("set the members"));
            }
            let wanted: HashSet<u64> = list.iter().map(|p| p.id).chain([by.id]).collect();
            if wanted.len() > facts.max_members {
                return Err(SendError::Full {
                    limit: facts.max_members,
                });
            }
            change.leavers = facts
                .member_ids()
                .into_iter()
                .filter(|m| !wanted.contains(m))
                .collect();
            let mut joiners: Vec<u64> = wanted
                .iter()
                .copied()
                .filter(|u| !facts.members.contains_key(u))
                .collect();
            joiners.sort_unstable();
            change.joiners = joiners.into_iter().map(|u| (u, by.id)).collect();
            if change.leavers.is_empty() && change.joiners.is_empty() {
                return Ok((change, GroupOutcome::Done));
            }
            change.notice = Some(Notice::new(
                "groupMembers",
                notices::members_replaced(facts.locale, &by.name),
            ));
            GroupOutcome::Done
        }
    };
    Ok((change, outcome))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: u64 = 1;
    const MEMBER: u64 = 2;
    const OUTSIDER: u64 = 9;

    struct Group {
        record: GroupRecord,
        members: HashMap<u64, MemberRecord>,
        requests: HashSet<u64>,
        max_members: usize,
        locale: Locale,
    }

    fn group(members: &[u64], invite_confirm: u8) -> Group {
        let record = GroupRecord {
            id: 7,
            uuid: "u".into(),
            ext_id: None,
            owner: OWNER,
            name: "old".into(),
            avatar: String::new(),
            remark: String::new(),
            invite_confirm,
            status: 1,
            created_ms: 1,
            updated_ms: 1,
        };
        let members = members
            .iter()
            .map(|id| {
                let m = MemberRecord {
                    row_id: *id,
                    nickname: String::new(),
                    joined_seq: 0,
                    joined_ms: 1,
                    inviter: 0,
                };
                (*id, m)
            })
            .collect();
        Group {
            record,
            members,
            requests: HashSet::new(),
            max_members: 3,
            locale: Locale::ZhCn,
        }
    }

    fn party(id: u64) -> Party {
        Party {
            id,
            name: format!("u{id}"),
            avatar: String::new(),
        }
    }

    fn decide(g: &Group, by: u64, op: GroupOp) -> Result<(Change, GroupOutcome), SendError> {
        let facts = Facts {
            record: &g.record,
            members: &g.members,
            requests: &g.requests,
            max_members: g.max_members,
            locale: g.locale,
            now: 500,
        };
        plan(&facts, &party(by), op)
    }

    fn notice(action: &'static str, text: &str) -> Option<Notice> {
        Some(Notice::new(action, text.into()))
    }

    #[test]
    fn only_the_owner_renames() {
        let g = group(&[OWNER, MEMBER], 0);
        let (change, outcome) = decide(&g, OWNER, GroupOp::Rename("new".into())).unwrap();
        assert_eq!(outcome, GroupOutcome::Done);
        let record = change.record.unwrap();
        assert_eq!((record.name.as_str(), record.updated_ms), ("new", 500));
        assert_eq!(change.notice, notice("groupRename", "u1修改群名称为new"));
        let refused = decide(&g, MEMBER, GroupOp::Rename("x".into())).unwrap_err();
        assert_eq!(
            refused,
            SendError::Forbidden("only the group owner may rename the group".into())
        );
    }

    #[test]
    fn notices_follow_the_locale() {
        let mut g = group(&[OWNER, MEMBER], 0);
        g.locale = Locale::En;
        let (change, _) = decide(&g, OWNER, GroupOp::SetRemark("hi".into())).unwrap();
        assert_eq!(
            change.notice,
            notice("groupRemark", "u1 changed the group notice: hi")
        );
        assert_eq!(change.record.unwrap().remark, "hi");
    }

    #[test]
    fn invitations_join_at_once_or_wait_by_the_join_rule() {
        let open = group(&[OWNER, MEMBER], 0);
        let invite = |user| GroupOp::Invite {
            user: party(user),
            desc: "please".into(),
        };
        let (change, outcome) = decide(&open, MEMBER, invite(5)).unwrap();
        assert_eq!(outcome, GroupOutcome::Joined);
        assert_eq!(change.joiners, [(5, MEMBER)]);
        assert_eq!(change.notice, notice("groupJoin", "u2邀请u5加入了群聊"));
        let (change, _) = decide(&open, 5, invite(5)).unwrap();
        assert_eq!(change.joiners, [(5, 0)], "asking oneself: no inviter");
        assert_eq!(change.notice, notice("groupJoin", "u5加入了群聊"));

        let closed = group(&[OWNER, MEMBER], 1);
        let (change, outcome) = decide(&closed, MEMBER, invite(5)).unwrap();
        assert_eq!(outcome, GroupOutcome::Requested);
        assert!(change.joiners.is_empty() && change.notice.is_none());
        let request = change.request.unwrap();
        assert_eq!(
            (request.user, request.inviter, request.created_ms),
            (5, MEMBER, 500)
        );
        let (change, outcome) = decide(&closed, OWNER, invite(5)).unwrap();
        assert_eq!(
            (outcome, change.joiners),
            (GroupOutcome::Joined, vec![(5, OWNER)])
        );

        assert!(matches!(
            decide(&open, OUTSIDER, invite(5)),
            Err(SendError::Forbidden(_))
        ));
        assert!(matches!(
            decide(&open, OWNER, invite(MEMBER)),
            Err(SendError::Conflict(_))
        ));
    }

    #[test]
    fn a_full_group_takes_no_one_more() {
        let g = group(&[OWNER, MEMBER, 3], 0);
        let op = GroupOp::Invite {
            user: party(5),
            desc: String::new(),
        };
        assert_eq!(decide(&g, OWNER, op).unwrap_err(), SendError::Full { limit: 3 });
        let replace = GroupOp::ReplaceMembers(vec![party(2), party(3), party(4)]);
        assert_eq!(
            decide(&g, OWNER, replace).unwrap_err(),
            SendError::Full { limit: 3 }
        );
    }

    #[test]
    fn requests_are_approved_or_refused_by_the_owner() {
        let mut g = group(&[OWNER, MEMBER], 1);
        g.requests.insert(5);
        let (change, outcome) = decide(
            &g,
            OWNER,
            GroupOp::Approve {
                user: party(5),
                agree: true,
            },
        )
        .unwrap();
        assert_eq!(outcome, GroupOutcome::Joined);
        assert_eq!((change.joiners, change.drop_request), (vec![(5, OWNER)], Some(5)));
        assert_eq!(change.notice, notice("groupJoin", "u1同意了u5加入群聊"));
        let (change, outcome) = decide(
            &g,
            OWNER,
            GroupOp::Approve {
                user: party(5),
                agree: false,
            },
        )
        .unwrap();
        assert_eq!(outcome, GroupOutcome::Done);
        assert!(change.joiners.is_empty() && change.notice.is_none());
        assert_eq!(change.drop_request, Some(5));
        let unknown = decide(
            &g,
            OWNER,
            GroupOp::Approve {
                user: party(6),
                agree: true,
            },
        );
        assert!(matches!(unknown, Err(SendError::NotFound(_))));
        let by_member = decide(
            &g,
            MEMBER,
            GroupOp::Approve {
                user: party(5),
                agree: true,
            },
        );
        assert!(matches!(by_member, Err(SendError::Forbidden(_))));
    }

    #[test]
    fn removing_needs_the_owner_and_a_member() {
        let g = group(&[OWNER, MEMBER], 0);
        let (change, _) = decide(&g, OWNER, GroupOp::Remove(party(MEMBER))).unwrap();
        assert_eq!(change.leavers, [MEMBER]);
        assert_eq!(change.notice, notice("groupRemove", "u1将u2移出了群聊"));
        let not_member = decide(&g, OWNER, GroupOp::Remove(party(OUTSIDER))).unwrap_err();
        assert_eq!(not_member, SendError::NotFound("user 9 is not a member".into()));
        assert!(matches!(
            decide(&g, OWNER, GroupOp::Remove(party(OWNER))),
            Err(SendError::Invalid(_))
        ));
        assert!(matches!(
            decide(&g, MEMBER, GroupOp::Remove(party(OWNER))),
            Err(SendError::Forbidden(_))
        ));
    }

    #[test]
    fn leaving_as_owner_dissolves_the_group() {
        let g = group(&[3, OWNER, MEMBER], 0);
        let (change, outcome) = decide(&g, OWNER, GroupOp::Leave).unwrap();
        assert_eq!(outcome, GroupOutcome::Dissolved);
        assert_eq!(change.leavers, [OWNER, MEMBER, 3]);
        assert_eq!(change.record.unwrap().status, 0);
        assert_eq!(change.notice, notice("groupDissolve", "u1解散了群聊"));
        let (change, outcome) = decide(&g, MEMBER, GroupOp::Leave).unwrap();
        assert_eq!((outcome, change.leavers), (GroupOutcome::Quit, vec![MEMBER]));
        assert_eq!(change.notice, notice("groupQuit", "u2退出了群聊"));
        assert!(matches!(
            decide(&g, OUTSIDER, GroupOp::Leave),
            Err(SendError::Forbidden(_))
        ));
    }

    #[test]
    fn replacing_members_keeps_the_owner() {
        let g = group(&[OWNER, MEMBER, 3], 0);
        let (change, _) = decide(&g, OWNER, GroupOp::ReplaceMembers(vec![party(3), party(4)])).unwrap();
        assert_eq!(change.leavers, [MEMBER]);
        assert_eq!(change.joiners, [(4, OWNER)]);
        assert_eq!(change.notice, notice("groupMembers", "u1更新了群成员"));
        let same = GroupOp::ReplaceMembers(vec![party(MEMBER), party(3)]);
        let (change, outcome) = decide(&g, OWNER, same).unwrap();
        assert_eq!((change, outcome), (Change::default(), GroupOutcome::Done));
    }

    #[test]
    fn nickname_and_join_rule() {
        let g = group(&[OWNER, MEMBER], 0);
        let (change, _) = decide(&g, MEMBER, GroupOp::SetNickname("nick".into())).unwrap();
        assert_eq!(change.nickname, Some((MEMBER, "nick".into())));
        assert!(change.notice.is_none());
        assert!(matches!(
            decide(&g, OUTSIDER, GroupOp::SetNickname("x".into())),
            Err(SendError::Forbidden(_))
        ));
        let (change, _) = decide(&g, OWNER, GroupOp::SetJoinRule(1)).unwrap();
        assert_eq!(change.record.unwrap().invite_confirm, 1);
        assert!(matches!(
            decide(&g, MEMBER, GroupOp::SetJoinRule(1)),
            Err(SendError::Forbidden(_))
        ));
    }
}
