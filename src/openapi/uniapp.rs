//! The uni-app chat face and the native read side (history, conversation list): accounts,
//! visitors, friends, groups, messages, revoke, read receipts. Form or JSON bodies; the
//! `token` header; `{"msg":"ok","data":...}` or HTTP 4xx/5xx `{"msg":"fail","data":reason}`.

use super::Op;

/// Visitor fields: the device and the signed timestamp (header `X-Security-Sign`).
const DEVICE: &str = "deviceId* timestamp* uniplatform devicemodel deviceos devicebrand app_id";

pub fn ops() -> Vec<Op> {
    vec![
        // Accounts
        Op::post("/api/regChat", "Register a user; answers the user with a token")
            .public()
            .body("username* password* app_id")
            .errors(&[400, 409, 503])
            .data("LoggedIn"),
        Op::post("/api/loginChat", "Log in; answers the user with a new token")
            .public()
            .body("username* password* app_id")
            .errors(&[400, 401, 403, 404, 429, 503])
            .data("LoggedIn"),
        Op::post(
            "/api/visitorRegister",
            "The device's visitor with a token (signed: X-Security-Sign)",
        )
        .public()
        .body(DEVICE)
        .errors(&[400, 401, 429, 503])
        .data("LoggedIn"),
        Op::post(
            "/api/visitorregChat",
            "A signed device's visitor becomes a registered user",
        )
        .public()
        .body("deviceId* timestamp* username* password* uniplatform devicemodel deviceos devicebrand app_id")
        .errors(&[400, 401, 409, 429, 503])
        .data("LoggedIn"),
        Op::post(
            "/api/visitorloginChat",
            "Log a registered user in from a signed device",
        )
        .public()
        .body("deviceId* timestamp* username* password* uniplatform devicemodel deviceos devicebrand app_id")
        .errors(&[400, 401, 404, 429, 503])
        .data("LoggedIn"),
        Op::get(
            "/api/userinfo/{uuid}",
            "A user's public profile (tenant: the token's, X-App-Id, or default)",
        )
        .public()
        .errors(&[400, 404])
        .data(
            "{uuid:string username:string nickname:string avatar:string role:string \
             userinfo:UserInfo userset:string}",
        ),
        Op::post("/api/chat/logout", "Revoke this token and close its WebSockets").errors(&[503])
            .data("true"),
        Op::post(
            "/api/chat/searchUser",
            "Users whose username or nickname contains the keyword",
        )
        .body("keyword*")
        .errors(&[400, 403])
        .data("[FoundUser]"),
        Op::post(
            "/api/chat/presence",
            "Whether friends and fellow group members are online, and when last seen",
        )
        .body("userIds*:array")
        .errors(&[400, 403, 413])
        .data("[{userId:int online:bool lastSeen:int|null hidden:bool}]"),
        Op::post(
            "/api/chat/updateUserinfo",
            "Change one profile field (or hide_presence, 0 or 1)",
        )
            .body("fieldname* fieldValue")
            .errors(&[400, 403, 409, 503])
            .data("string"),
        Op::post(
            "/api/chat/updatePassword",
            "Change my password; my other tokens are revoked and their sockets closed",
        )
        .body("oldPassword* newPassword*")
        .errors(&[400, 403, 429, 503]),
        Op::post(
            "/api/chat/userset",
            "Replace the user's settings (a JSON object as a string)",
        )
        .body("userset*")
        .errors(&[400, 403, 503])
        .data("'ok'"),
        // Friends
        Op::post("/api/chat/applyfriend", "Ask a user to become friends")
            .body("friend_id*:int nickname")
            .errors(&[400, 403, 404, 409, 503])
            .data("'ok'"),
        Op::get("/api/chat/listapplyfriend", "Applications to me, newest first")
            .query("limit:int")
            .errors(&[400, 403])
            .data("{alldata:[{..FriendApply user:UserBrief|null}] pendingCount:int}"),
        Op::get("/api/chat/listapplyfriend/{page}", "Applications to me, one page")
            .query("limit:int")
            .errors(&[400, 403])
            .data("{alldata:[{..FriendApply user:UserBrief|null}] pendingCount:int}"),
        Op::post(
            "/api/chat/handleapply/{id}",
            "Answer an application (agree makes both friends)",
        )
        .body("status* nickname")
        .errors(&[400, 403, 404, 409, 503])
        .data("'ok'"),
        Op::get("/api/chat/goodfriendlist", "My friends grouped by initial")
            .query("limit:int")
            .errors(&[400, 403])
            .data(
                "{count:int rows:{newList:[{title:string list:[FriendEntry]}] \
                 indexList:[string] total:int}}",
            ),
        Op::get(
            "/api/chat/goodfriendlist/{page}",
            "My friends grouped by initial, one page",
        )
        .query("limit:int")
        .errors(&[400, 403])
        .data(
            "{count:int rows:{newList:[{title:string list:[FriendEntry]}] \
             indexList:[string] total:int}}",
        ),
        Op::get(
            "/api/chat/getgoodfriendinfo/{id}",
            "My friend row and the friend's profile",
        )
        .errors(&[400, 403, 404])
        .data(
            "{..Friend friendinfo:{id:int username:string avatar:string \
             nickname:string role:string status:int userinfo:UserInfo}}",
        ),
        Op::post(
            "/api/chat/setblackgoodfriend/{id}",
            "Blacklist a friend (toggles without isblack)",
        )
        .body("isblack:int")
        .errors(&[400, 403, 404, 503])
        .data("'ok'"),
        Op::post(
            "/api/chat/setstargoodfriend/{id}",
            "Star a friend (toggles without star)",
        )
        .body("star:int")
        .errors(&[400, 403, 404, 503])
        .data("'ok'"),
        Op::post("/api/chat/setmeOrfriendCanSee/{id}", "Who sees whose posts")
            .body("friendlookme:int melookfriend:int")
            .errors(&[400, 403, 404, 503])
            .data("'ok'"),
        Op::post(
            "/api/chat/isApplyfriend/{uuid}",
            "That user's pending application to me, or null",
        )
        .errors(&[400, 403, 404])
        .data("FriendApply|null"),
        Op::post("/api/chat/ismygoodfriend/{id}", "My friend row, or false").errors(&[400, 403, 404])
            .data("Friend|false"),
        Op::post(
            "/api/chat/deletegoodfriend/{id}",
            "End a friendship on both sides",
        )
        .errors(&[400, 403, 404, 503])
        .data("string"),
        Op::post(
            "/api/chat/getUserSetInfo",
            "A user's settings and whether we are friends",
        )
        .body("userid*:int")
        .errors(&[400, 403, 404])
        .data(
            "{id:int userset:string invite_confirm:int isgoodfriend:bool \
             isgoodfriend_status:bool}",
        ),
        Op::post(
            "/api/chat/autoAddFriendAndAgree",
            "Become friends at once when the target allows it",
        )
        .body("friend_id*:int nickname")
        .errors(&[400, 403, 404, 409, 503])
        .data("'ok'"),
        // Groups
        Op::post("/api/chat/group/create", "Create a group with my friends")
            .body("userIds*:array")
            .errors(&[400, 403, 404, 503])
            .data("'ok'"),
        Op::get("/api/chat/grouplist", "My groups, newest first")
            .query("limit:int")
            .errors(&[400])
            .data(
                "[{..Group group_users:[{group_id:int user_id:int nickname:string \
                 avatar:string}]}]",
            ),
        Op::get("/api/chat/grouplist/{page}", "My groups, one page")
            .query("limit:int")
            .errors(&[400])
            .data(
                "[{..Group group_users:[{group_id:int user_id:int nickname:string \
                 avatar:string}]}]",
            ),
        Op::get("/api/chat/groupinfo/{id}", "A group with its members").errors(&[400, 403, 404])
            .data("{..Group group_users:[GroupMember]}"),
        Op::post("/api/chat/groupUpdateName", "Rename a group (owner)")
            .body("id:int group_id:int name*")
            .errors(&[400, 403, 404, 503])
            .data("'ok'"),
        Op::post("/api/chat/groupremark", "Set the group notice (owner)")
            .body("id:int group_id:int remark*")
            .errors(&[400, 403, 404, 503])
            .data("'ok'"),
        Op::post("/api/chat/groupnickname", "My nickname in a group")
            .body("id:int group_id:int nickname*")
            .errors(&[400, 403, 404, 503])
            .data("'ok'"),
        Op::post(
            "/api/chat/groupDeleteOrQuit",
            "The owner dissolves, a member quits",
        )
        .body("id:int group_id:int")
        .errors(&[400, 403, 404, 503])
        .data("'ok'"),
        Op::post("/api/chat/groupDeleteUser", "Remove a member (owner)")
            .body("group_id*:int user_id*:int")
            .errors(&[400, 403, 404, 503])
            .data("string"),
        Op::post("/api/chat/groupInviteUser", "Add a member, or ask the owner to")
            .body("group_id*:int user_id*:int inviteuser_id:int addGroupDesc")
            .errors(&[400, 403, 404, 409, 503])
            .data("string"),
        Op::post(
            "/api/chat/groupAddUserSet",
            "Open the group, or make joins need approval (owner)",
        )
        .body("group_id*:int addGroupSet*:int")
        .errors(&[400, 403, 404, 503])
        .data("string"),
        Op::post("/api/chat/groupAgreeOrNo", "Answer a join request (owner)")
            .body("group_id*:int user_id*:int type*")
            .errors(&[400, 403, 404, 503])
            .data("string"),
        Op::get(
            "/api/chat/groupQrcode/{id}",
            "A PNG QR code of the group (members)",
        )
        .query("type http chatType")
        .errors(&[400, 403, 404]),
        // Files
        Op::post(
            "/api/chat/uploadStreamSingleToServerDiy/{diydir}",
            "Upload one file into a folder (letters, digits, _ and -); answers its /public/uploads URL",
        )
        .multipart("file*:file")
        .errors(&[400, 413, 415, 503])
        .data("{url:string}"),
        Op::post(
            "/api/chat/uploadAliyun",
            "Upload one file to the configured object store; answers url, path, image_class_id, create_time",
        )
        .multipart("img*:file name imageClassId:int")
        .errors(&[400, 413, 415, 503])
        .answer(
            "{code:200 msg:string data:[{url:string path:string image_class_id:int \
             create_time:int}]}",
        ),
        Op::post(
            "/api/chat/getVideoScreenshot",
            "A frame of a stored video or one on an allowed host, as base64 and a stored URL",
        )
        .body("videoUrl* time:int width:int format")
        .errors(&[400, 403, 404, 413, 415, 500, 503])
        .data("{base64:string url:string format:'png'|'jpg' time:int width:int}"),
        Op::get("/public/uploads/{path:.*}", "A stored file")
            .public()
            .errors(&[404, 416]),
        Op::head("/public/uploads/{path:.*}", "A stored file's headers")
            .public()
            .errors(&[404, 416]),
        // Messages
        Op::post(
            "/api/chat/socket/sendmessage",
            "Send a direct or group message; answers the stored message",
        )
        .body("sendto_id*:int chatType type* data* options metadata:object cid")
        .errors(&[400, 403, 404, 429, 503])
        .data("Message"),
        Op::post(
            "/api/chat/chatGetmessageOffLine",
            "Push what I have not received to my WebSockets",
        )
        .errors(&[503])
        .data("'ok'"),
        Op::post(
            "/api/chat/revokeMessage",
            "Revoke my message inside the revoke window; answers (and pushes) the revoked message, now its placeholder, with group",
        )
        .body("id* chatType to_id:int")
        .errors(&[400, 403, 404, 503])
        .data("Revoked"),
        Op::post("/api/chat/read", "Advance my read cursor in a conversation")
            .body("conversation* seq*:int")
            .errors(&[400, 403, 404, 503])
            .data("{conversation:string seq:int}"),
        // Native read side
        Op::get(
            "/api/chat/history/{chat_type}/{id}",
            "A page of history, newest first (single, group or conversation)",
        )
        .query("before:int after:int limit:int")
        .errors(&[400, 403, 404])
        .data("{conversation:string list:[Message] next_before:int|null head:int}"),
        Op::get(
            "/api/chat/conversations",
            "My conversations with unread counts, newest activity first",
        )
        .query("limit:int")
        .errors(&[400])
        .data("{list:[Conversation] next_cursor:string|null total:int}"),
    ]
}
