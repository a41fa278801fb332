//! The texts of the system notices written into timelines (group changes, revokes), in the
//! server's [`Locale`]. A notice is stored with its text, so the locale in force when it
//! was written is the one its readers see.

use serde::{Deserialize, Serialize};

/// The language of the system notices; one per server (`server.locale`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Locale {
    /// Simplified Chinese, the texts the uni-app chat document shows (the default).
    #[default]
    #[serde(rename = "zh-CN")]
    ZhCn,
    /// English.
    #[serde(rename = "en")]
    En,
}

impl Locale {
    /// How a list of names is joined.
    fn separator(self) -> &'static str {
        match self {
            Locale::ZhCn => "、",
            Locale::En => ", ",
        }
    }
}

/// Names joined into one list, as a default group name or a notice shows them.
pub fn name_list(locale: Locale, names: &[&str]) -> String {
    names.join(locale.separator())
}

/// `by` created a group with `others` (none: a group of one).
pub fn group_created(locale: Locale, by: &str, others: &[&str]) -> String {
    let others = name_list(locale, others);
    match (locale, others.is_empty()) {
        (Locale::ZhCn, true) => format!("{by}创建了群聊"),
        (Locale::ZhCn, false) => format!("{by}创建了群聊，并邀请{others}加入"),
        (Locale::En, true) => format!("{by} created the group"),
        (Locale::En, false) => format!("{by} created the group and invited {others}"),
    }
}

/// `by` renamed the group to `name`.
pub fn group_renamed(locale: Locale, by: &str, name: &str) -> String {
    match locale {
        Locale::ZhCn => format!("{by}修改群名称为{name}"),
        Locale::En => format!("{by} renamed the group to {name}"),
    }
}

/// `by` set the group notice to `remark`.
pub fn group_remark(locale: Locale, by: &str, remark: &str) -> String {
    match locale {
        Locale::ZhCn => format!("{by}修改了群公告：{remark}"),
        Locale::En => format!("{by} changed the group notice: {remark}"),
    }
}

/// `who` joined the group by their own request.
pub fn joined(locale: Locale, who: &str) -> String {
    match locale {
        Locale::ZhCn => format!("{who}加入了群聊"),
        Locale::En => format!("{who} joined the group"),
    }
}

/// `by` added `who` to the group.
pub fn invited(locale: Locale, by: &str, who: &str) -> String {
    match locale {
        Locale::ZhCn => format!("{by}邀请{who}加入了群聊"),
        Locale::En => format!("{by} invited {who} to the group"),
    }
}

/// `by` approved the request of `who` to join.
pub fn approved(locale: Locale, by: &str, who: &str) -> String {
    match locale {
        Locale::ZhCn => format!("{by}同意了{who}加入群聊"),
        Locale::En => format!("{by} approved {who} joining the group"),
    }
}

/// `by` removed `who` from the group.
pub fn removed(locale: Locale, by: &str, who: &str) -> String {
    match locale {
        Locale::ZhCn => format!("{by}将{who}移出了群聊"),
        Locale::En => format!("{by} removed {who} from the group"),
    }
}

/// The owner `by` dissolved the group.
pub fn dissolved(locale: Locale, by: &str) -> String {
    match locale {
        Locale::ZhCn => format!("{by}解散了群聊"),
        Locale::En => format!("{by} dissolved the group"),
    }
}

/// The member `by` left the group.
pub fn quit(locale: Locale, by: &str) -> String {
    match locale {
        Locale::ZhCn => format!("{by}退出了群聊"),
        Locale::En => format!("{by} left the group"),
    }
}

/// The owner `by` set the whole member list.
pub fn members_replaced(locale: Locale, by: &str) -> String {
    match locale {
        Locale::ZhCn => format!("{by}更新了群成员"),
        Locale::En => format!("{by} updated the group members"),
    }
}

/// `by` revoked one of their messages.
pub fn revoked(locale: Locale, by: &str) -> String {
    match locale {
        Locale::ZhCn => format!("{by}撤回了一条消息"),
        Locale::En => format!("{by} recalled a message"),
    }
}

/// The placeholder of a message whose sender's account was deleted with its messages.
pub fn erased(locale: Locale) -> String {
    match locale {
        Locale::ZhCn => "该消息已被删除".to_owned(),
        Locale::En => "This message was deleted".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_texts_are_the_documents() {
        let l = Locale::ZhCn;
        assert_eq!(Locale::default(), Locale::ZhCn);
        assert_eq!(group_created(l, "甲", &[]), "甲创建了群聊");
        assert_eq!(
            group_created(l, "甲", &["乙", "丙"]),
            "甲创建了群聊，并邀请乙、丙加入"
        );
        assert_eq!(group_renamed(l, "甲", "新群"), "甲修改群名称为新群");
        assert_eq!(group_remark(l, "甲", "公告"), "甲修改了群公告：公告");
        assert_eq!(joined(l, "乙"), "乙加入了群聊");
        assert_eq!(invited(l, "甲", "乙"), "甲邀请乙加入了群聊");
        assert_eq!(approved(l, "甲", "乙"), "甲同意了乙加入群聊");
        assert_eq!(removed(l, "甲", "乙"), "甲将乙移出了群聊");
        assert_eq!(dissolved(l, "甲"), "甲解散了群聊");
        assert_eq!(quit(l, "乙"), "乙退出了群聊");
        assert_eq!(members_replaced(l, "甲"), "甲更新了群成员");
        assert_eq!(revoked(l, "乙"), "乙撤回了一条消息");
        assert_eq!(name_list(l, &["a", "b", "c"]), "a、b、c");
    }

    #[test]
    fn english_texts() {
        let l = Locale::En;
        assert_eq!(group_created(l, "Ann", &[]), "Ann created the group");
        assert_eq!(
            group_created(l, "Ann", &["Bob", "Cy"]),
            "Ann created the group and invited Bob, Cy"
        );
        assert_eq!(group_renamed(l, "Ann", "Team"), "Ann renamed the group to Team");
        assert_eq!(group_remark(l, "Ann", "hi"), "Ann changed the group notice: hi");
        assert_eq!(joined(l, "Bob"), "Bob joined the group");
        assert_eq!(invited(l, "Ann", "Bob"), "Ann invited Bob to the group");
        assert_eq!(approved(l, "Ann", "Bo"), "Ann approved Bo joining the group");
        assert_eq!(removed(l, "Ann", "Bo"), "Ann removed Bo from the group");
        assert_eq!(dissolved(l, "Ann"), "Ann dissolved the group");
        assert_eq!(quit(l, "Bob"), "Bob left the group");
        assert_eq!(members_replaced(l, "Ann"), "Ann updated the group members");
        assert_eq!(revoked(l, "Bob"), "Bob recalled a message");
        assert_eq!(name_list(l, &["a", "b"]), "a, b");
    }

    #[test]
    fn locales_are_named_as_the_config_writes_them() {
        let zh: Locale = serde_json::from_str(r#""zh-CN""#).unwrap();
        let en: Locale = serde_json::from_str(r#""en""#).unwrap();
        assert_eq!((zh, en), (Locale::ZhCn, Locale::En));
        assert_eq!(serde_json::to_string(&Locale::ZhCn).unwrap(), r#""zh-CN""#);
        assert!(serde_json::from_str::<Locale>(r#""fr""#).is_err());
        assert!(serde_json::from_str::<Locale>(r#""zh_cn""#).is_err());
    }
}
