"""Schemathesis hooks for .ci/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

Client listener (PARLOR_ST_CLIENT=host:port): when loaded, registers two users who are
friends, with a message and a group between them, then gives every request the first
user's token (`token` and `Authorization` headers) and, for half of the requests, path
parameters that name those real things (the Chat21 `app_id` of the token, the users' ids,
the group), so that the generated requests get past authentication and lookups to the
routes' own logic.

Admin listener (PARLOR_ST_ADMIN_SECRET): signs every request, the headers `nonce`,
`timestamp` (ms) and `sign` = lowercase hex sha1 of `nonce|secret|timestamp`.
"""

import hashlib
import json
import os
import random
import time
import urllib.request
import uuid

import schemathesis

CLIENT = os.environ.get("PARLOR_ST_CLIENT")
ADMIN_SECRET = os.environ.get("PARLOR_ST_ADMIN_SECRET")

TOKEN = None
PATH_VALUES = {}


def call(path, body, token=None):
    """POSTs a JSON body to the client listener and returns the `data` of its answer."""
    request = urllib.request.Request(
        f"http://{CLIENT}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **({"token": token} if token else {})},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.load(response)
    if answer.get("msg") != "ok":
        raise RuntimeError(f"{path}: {answer}")
    return answer["data"]


def prepare():
    """Two friends, a message and a group; returns (token, path values)."""
    suffix = uuid.uuid4().hex[:8]
    me = call("/api/regChat", {"username": f"st_a_{suffix}", "password": "secret123"})
    friend = call("/api/regChat", {"username": f"st_b_{suffix}", "password": "secret123"})
    token = me["token"]
    # New users need no approval in the CI configuration (users.default_invite_confirm = 0).
    call("/api/chat/autoAddFriendAndAgree", {"friend_id": friend["id"]}, token)
    sent = call(
        "/api/chat/socket/sendmessage",
        {"sendto_id": friend["id"], "type": "text", "data": "hello"},
        token,
    )
    call("/api/chat/group/create", {"userIds": [friend["id"]]}, token)
    values = {
        "app_id": me["app_id"],
        "user_id": me["uuid"],
        "uuid": friend["uuid"],
        "id": str(friend["id"]),
        "friend": str(friend["id"]),
        "bannerId": str(friend["id"]),
        "contactId": str(friend["id"]),
        "with": friend["uuid"],
        "recipient_id": friend["uuid"],
        "member_id": friend["uuid"],
        "chat_type": "single",
        "page": "1",
        "conversation_id": "1",
        "group_id": "1",
        "message": sent["id"],
    }
    return token, values


if CLIENT:
    TOKEN, PATH_VALUES = prepare()


def with_headers(case, values):
    """The case's headers with `values` set, replacing any of the same name in another case."""
    names = {name.lower() for name in values}
    kept = {k: v for k, v in (case.headers or {}).items() if k.lower() not in names}
    case.headers = {**kept, **values}


@schemathesis.hook
def before_call(context, case, **kwargs):
    if ADMIN_SECRET:
        nonce = uuid.uuid4().hex
        timestamp = str(int(time.time() * 1000))
        sign = hashlib.sha1(f"{nonce}|{ADMIN_SECRET}|{timestamp}".encode()).hexdigest()
        with_headers(case, {"nonce": nonce, "timestamp": timestamp, "sign": sign})
    if TOKEN:
        with_headers(case, {"token": TOKEN, "Authorization": TOKEN})
        if case.path_parameters and random.random() < 0.5:
            for name in case.path_parameters:
                if name in PATH_VALUES:
                    case.path_parameters[name] = PATH_VALUES[name]
