//! The chat-room face: users, contacts, bans, conversations (named by number) and history.
//! Form or JSON bodies; the `token` header; `{"success":true,"message":...,...}` or the
//! error's status with `{"success":false,"message":reason}`.

use super::Op;

pub fn ops() -> Vec<Op> {
    vec![
        Op::post("/user/register", "Register a user")
            .public()
            .body("username* password* nickname* email app_id")
            .errors(&[400, 409, 503])
            .data("{id:int}"),
        Op::post("/user/login", "Log in; answers `token` and `id`")
            .public()
            .body("username* password* app_id")
            .errors(&[400, 401, 403, 404, 429, 503])
            .data("{token:string id:int}"),
        Op::get("/user/profile", "My profile")
            .errors(&[404])
            .data("{user:RoomUser}"),
        Op::get("/user/profile/{id}", "A user's profile")
            .errors(&[400, 404])
            .data("{user:RoomUser}"),
        Op::post(
            "/user/ban/{bannerId}",
            "Ban a user: their messages to me are refused",
        )
        .errors(&[400, 403, 404, 409, 503])
        .data("{}"),
        Op::delete("/user/unban/{bannerId}", "Lift a ban")
            .errors(&[400, 403, 404, 503])
            .data("{}"),
        Op::post("/contacts/add", "Become contacts (friends) at once")
            .body("id*:int")
            .errors(&[400, 403, 404, 409, 503])
            .data("{}"),
        Op::delete("/contacts/remove/{contactId}", "Remove a contact on both sides")
            .errors(&[400, 403, 404, 503])
            .data("{}"),
        Op::get("/contacts/list", "My contacts").data("{contacts:[RoomContact]}"),
        Op::post(
            "/conversation/create",
            "The conversation with one contact, or a new group with several",
        )
        .query("contactId*")
        .errors(&[400, 403, 404, 503])
        .data(
            "{conversation:{id:int type:'single'|'group' members:[int]} \
             conversations:[{id:int type:'single'|'group' members:[int]}]}",
        ),
        Op::get("/conversation/getlist", "My conversations, newest activity first")
            .errors(&[503])
            .data(
                "{conversations:[{id:int|null type:'single'|'group' members:[int] \
                 name:string unread:int last_message:RoomMessage|null}]}",
            ),
        Op::get("/conversation/members", "The other members of a conversation")
            .query("conversationId*")
            .errors(&[400, 403, 404])
            .data("{members:[RoomContact]}"),
        Op::get(
            "/message/history/{conversation_id}",
            "A page of history, newest first",
        )
        .query("before:int limit:int")
        .errors(&[400, 403, 404])
        .data("{messages:[RoomMessage] next_before:int|null}"),
        Op::post(
            "/message/image",
            "Upload an image; `message` is its URL (also url, width, height)",
        )
        .multipart("image*:file")
        .errors(&[400, 413, 415, 503])
        .data("{url:string width:int|null height:int|null}"),
    ]
}
