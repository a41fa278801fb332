//! The admin face, on its own listener: JSON bodies signed with the `nonce`, `timestamp` and
//! `sign` headers; answers are HTTP 200 `{"code":0,"msg":"success","result":...}` or a
//! non-zero `code` (see the operation descriptions); an unknown route is 404.

use super::Op;

/// Every admin body may name the tenant.
pub fn ops() -> Vec<Op> {
    vec![
        Op::post("/admin/robot/create", "Create or update a robot")
            .body("name* userId appId")
            .errors(&[404])
            .data("{userId:string secret:string id:int username:string}"),
        Op::post(
            "/admin/user/put_setting",
            "Store a user setting (scope 3: conversation top)",
        )
        .body("userId* scope*:int key* value* appId")
        .errors(&[404])
        .data("{}"),
        Op::post("/admin/user/get_setting", "A user setting")
            .body("userId* scope*:int key* appId")
            .errors(&[404])
            .data("{userId:string scope:int key:string value:string}"),
        Op::post("/admin/user/list", "A page of the tenant's users")
            .body("offset:int count:int keyword appId")
            .errors(&[404])
            .data("{total:int users:[AdminUser]}"),
        Op::post(
            "/admin/user/disable",
            "Disable a user: logins and tokens refused, sessions closed",
        )
        .body("userId* appId")
        .errors(&[404])
        .data("AdminUser"),
        Op::post("/admin/user/enable", "Enable a disabled user again")
            .body("userId* appId")
            .errors(&[404])
            .data("AdminUser"),
        Op::post(
            "/admin/user/kick",
            "Close a user's sessions and revoke every token issued so far",
        )
        .body("userId* appId")
        .errors(&[404])
        .data("AdminUser"),
        Op::post(
            "/admin/user/delete",
            "Delete a user with their friendships and memberships; messages kept or erased",
        )
        .body("userId* eraseMessages*:bool appId")
        .errors(&[404])
        .data("{userId:string id:int groupsLeft:int groupsDissolved:int messagesErased:int}"),
        Op::post("/admin/get_setting", "A tenant's system setting")
            .body("id*:int appId")
            .errors(&[404])
            .data("{id:int value:string desc:string}"),
        Op::post("/admin/modify_setting", "Change a tenant's system setting")
            .body("id*:int value* desc appId")
            .errors(&[404])
            .bare(),
        Op::post(
            "/admin/file/conversation_files",
            "The file messages of a conversation",
        )
        .body("userId* conversation*:object count:int fromTime:int order:int appId")
        .errors(&[404])
        .data("[AdminFile]"),
        Op::post("/admin/file/user_files", "The file messages a user sent")
            .body("userId* offset:int count:int desc:bool appId")
            .errors(&[404])
            .data("[AdminFile]"),
        Op::post("/admin/file/get", "One file message")
            .body("messageUid* appId")
            .errors(&[404])
            .data("{messageUid:int|string messageId:string filename:string url:string size:int type:string}"),
        Op::post(
            "/admin/conversation/top",
            "Pin or unpin a conversation for a user",
        )
        .body("userId* conversation*:object top*:int appId")
        .errors(&[404])
        .bare(),
        Op::post("/admin/conversation/is_top", "Whether a conversation is pinned")
            .body("userId* conversation*:object appId")
            .errors(&[404])
            .data("{value:bool}"),
        Op::post("/admin/healthcheck", "Health")
            .errors(&[404])
            .data("{status:'healthy'}"),
        Op::get("/admin/healthcheck", "Health")
            .errors(&[404])
            .data("{status:'healthy'}"),
        Op::post("/admin/customer", "The customer id and name")
            .errors(&[404])
            .data("{customerId:string customerName:string}"),
        Op::post(
            "/admin/export",
            "The export file (JSON lines) of one tenant or all",
        )
        .body("tenant")
        .errors(&[404]),
        Op::post(
            "/admin/webhook/add",
            "Add a webhook endpoint (the secret is shown only here)",
        )
        .body("url* events*:array secret appId")
        .errors(&[404])
        .data("{id:int url:string events:[string] createdAt:int secret:string}"),
        Op::post("/admin/webhook/list", "The webhook endpoints of a tenant")
            .body("appId")
            .errors(&[404])
            .data("[{id:int url:string events:[string] createdAt:int}]"),
        Op::post(
            "/admin/webhook/remove",
            "Remove a webhook endpoint, its waiting events and dead letters",
        )
        .body("id*:int appId")
        .errors(&[404])
        .data("{}"),
        Op::post(
            "/admin/webhook/dead_letters",
            "Events given up after webhooks.max_attempts failed deliveries",
        )
        .body("id:int count:int appId")
        .errors(&[404])
        .data("[{deliveryId:int endpointId:int event:string attempts:int lastError:string createdAt:int body:string}]"),
        Op::post(
            "/admin/webhook/retry",
            "Put an endpoint's dead letters (or one) back in its outbox",
        )
        .body("id*:int deliveryId:int appId")
        .errors(&[404])
        .data("{count:int}"),
    ]
}
