//! The Chat21 face: messages, groups and conversations of users from an outside identity
//! provider. JSON bodies; `Authorization: <JWT>` whose `app_id` must match the path;
//! `{"success":true,...}`, a missing field as 405 plain text, refusals as 405
//! `{"success":false,"err":...,"http_status":405}`, others with their status.

use super::Op;

pub fn ops() -> Vec<Op> {
    vec![
        Op::post("/api/{app_id}/groups", "Create a group (201)")
            .body("group_name* group_members*:object group_id")
            .errors(&[404, 405, 409, 429, 503])
            .created()
            .data("{group:Chat21Group}"),
        Op::get("/api/{app_id}/groups/{group_id}", "A group")
            .errors(&[404])
            .data("{result:Chat21Group}"),
        Op::put("/api/{app_id}/groups/{group_id}", "Rename a group (owner)")
            .body("group_name*")
            .errors(&[404, 405, 503])
            .data("{}"),
        Op::post("/api/{app_id}/groups/{group_id}/members", "Add a member")
            .body("member_id*")
            .errors(&[404, 405, 429, 503])
            .data("{}"),
        Op::put(
            "/api/{app_id}/groups/{group_id}/members",
            "Set the member list (owner)",
        )
        .body("members*:object")
        .errors(&[404, 405, 429, 503])
        .data("{}"),
        Op::delete(
            "/api/{app_id}/groups/{group_id}/members/{member_id}",
            "Leave, or remove a member (owner)",
        )
        .errors(&[404, 405, 503])
        .data("{}"),
        Op::post("/api/{app_id}/messages", "Send a message")
            .body(
                "sender_fullname recipient_id* recipient_fullname text type channel_type \
                 metadata:object attributes:object",
            )
            .errors(&[404, 405, 429, 503])
            .data("{message:Chat21Message}"),
        Op::delete(
            "/api/{app_id}/conversations/{recipient_id}",
            "Archive a conversation, or delete it with delete=true (201)",
        )
        .query("delete:bool")
        .errors(&[404, 405, 503])
        .created()
        .data("{}"),
        Op::delete(
            "/api/{app_id}/conversations/{recipient_id}/",
            "The same, with a trailing slash",
        )
        .query("delete:bool")
        .errors(&[404, 405, 503])
        .created()
        .data("{}"),
        Op::get("/api/{app_id}/{user_id}/conversations", "My conversations")
            .data("{result:[Chat21Conversation]}"),
        Op::get(
            "/api/{app_id}/{user_id}/archived_conversations",
            "My archived conversations",
        )
        .data("{result:[Chat21Conversation]}"),
        Op::get(
            "/api/{app_id}/{user_id}/conversations/archived",
            "My archived conversations",
        )
        .data("{result:[Chat21Conversation]}"),
        Op::get(
            "/api/{app_id}/{user_id}/conversations/{with}/messages",
            "The newest messages of a conversation",
        )
        .errors(&[404])
        .data("{result:[Chat21Message]}"),
        Op::get("/api/{app_id}/{user_id}/conversations/{with}", "One conversation")
            .errors(&[404])
            .data("{result:[Chat21Conversation]}"),
    ]
}
