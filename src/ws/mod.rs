//! The WebSocket endpoint: `GET /ws` authenticates and upgrades.
//!
//! The token is checked before the upgrade (`/ws?token=`, the `token` header or
//! `Authorization`); a Chat21 token's user is created on first use. Then:
//! - `session` ([`Session`]): the actor of one connection (frames in, pushes out, heartbeat);
//! - [`delivery`]: what the client is known to have read (the delivery probe);
//! - [`protocol`]: the client frames and their decoding;
//! - [`typing`]: which typing notes a session forwards.
//!
//! With `?ack=manual` only the client's own `ack` frames move the delivered cursor. A
//! session ends, closed with 1008 `token expired`, when its token expires, as REST refuses
//! the token from then on; and with 1008 `password changed`, `kicked`, `account disabled`
//! or `account deleted` when its user's tokens are revoked (the check is made again once the
//! Router knows the session, so a revocation during the upgrade closes it too).

pub mod delivery;
pub mod heartbeat;
pub mod protocol;
mod session;
pub mod typing;

use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;

use crate::auth::{token_of, Issued};
use crate::core::external::resolve_caller;
use crate::error::ApiError;
use crate::state::AppState;
pub use session::Session;

/// `GET /ws`: authenticate, then upgrade.
pub async fn connect(req: HttpRequest, stream: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    match upgrade(req, stream, state).await {
        Ok(resp) => resp,
        Err(e) => e.to_response(),
    }
}

async fn upgrade(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let token = token_of(&req)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::Unauthorized("token is required".into()))?;
    // A Parlor token names the user by id; an outside (Chat21) token by `sub`, and that
    // user is created on first use as on the Chat21 routes.
    let (user, jti, exp, issued) = match state.auth.verify(&token) {
        Ok(claims) => {
            let (tenant, id) = (claims.app_id.clone(), claims.id);
            let user = state
                .read(move |s| Ok(s.user(&tenant, id)?))
                .await?
                .ok_or_else(|| ApiError::Unauthorized("the token's user no longer exists".into()))?;
            let issued = Issued::Here {
                generation: claims.gen,
            };
            (user, claims.jti, claims.exp, issued)
        }
        // Whatever failed, the outside check says why: it also checks signature, expiry and
        // logout, and an outside token that has expired is not malformed as a Parlor one is.
        Err(_) => {
            let claims = state.auth.verify_external(&token)?;
            let user = resolve_caller(&state, &claims).await?;
            let issued = claims.issued();
            let jti = claims.jti.unwrap_or_else(|| format!("sub:{}", claims.sub));
            (user, jti, claims.exp, issued)
        }
    };
    let manual = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(|q| q.iter().any(|(k, v)| k == "ack" && v == "manual"))
        .unwrap_or(false);
    let session = Session::new(state.clone(), &user, &jti, manual)
        .expiring(exp)
        .issued(issued);
    ws::WsResponseBuilder::new(session, &req, stream)
        .frame_size(state.config.ws.max_frame_bytes)
        .start()
        .map_err(|e| ApiError::invalid(format!("not a WebSocket upgrade: {e}")))
}
