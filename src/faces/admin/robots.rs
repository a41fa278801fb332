//! Robots: `POST /admin/robot/create`, an account that sends as the operator's program.

use serde_json::json;

use super::{find_user, success, Result, Signed, State};
use crate::core::accounts;
use crate::error::ApiError;

pub(super) async fn robot_create(state: State, body: Signed) -> Result {
    let tenant = body.tenant()?;
    let name = body.str("name")?;
    if name.chars().count() > 50 {
        return Err(ApiError::invalid("name must be at most 50 characters").into());
    }
    let wanted = body.opt_str("userId")?;
    if let Some(id) = &wanted {
        if id.len() > 64 || id.chars().any(|c| c.is_whitespace()) {
            return Err(ApiError::invalid("userId must be at most 64 characters without spaces").into());
        }
    }
    let secret: String = {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        (0..16)
            .map(|_| char::from(b"abcdefghijkmnpqrstuvwxyz23456789"[rng.gen_range(0..32)]))
            .collect()
    };
    let existing = match &wanted {
        Some(id) => {
            let (t, key) = (tenant.clone(), id.clone());
            state.read(move |s| find_user(s, &t, &key)).await?
        }
        None => None,
    };
    let robot = accounts::put_robot(&state, &tenant, existing, wanted, name, secret.clone()).await?;
    Ok(success(
        json!({"userId": robot.uuid, "secret": secret, "id": robot.id, "username": robot.username}),
    ))
}
