//! Route registration that can be listed. Every face registers its routes through
//! [`Routes`], which hands each one to actix-web when serving and records its method and
//! path either way; [`RouteTable`] is that record for a listener, so a test can check that
//! the OpenAPI document describes every route that exists, and nothing else.

use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, Responder};

/// Registers routes into an actix-web `ServiceConfig` (or nowhere) and lists them.
pub struct Routes<'a> {
    cfg: Option<&'a mut web::ServiceConfig>,
    listed: Vec<(Method, &'static str)>,
}

impl<'a> Routes<'a> {
    /// Routes that are served: each is added to `cfg`.
    pub fn serving(cfg: &'a mut web::ServiceConfig) -> Self {
        Routes {
            cfg: Some(cfg),
            listed: Vec::new(),
        }
    }

    /// Adds `handler` for `method` on `path` (actix syntax: `{param}`).
    pub fn route<F, Args>(&mut self, method: Method, path: &'static str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.listed.push((method.clone(), path));
        if let Some(cfg) = self.cfg.as_deref_mut() {
            cfg.route(path, web::method(method).to(handler));
        }
        self
    }

    pub fn get<F, Args>(&mut self, path: &'static str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(Method::GET, path, handler)
    }

    pub fn head<F, Args>(&mut self, path: &'static str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(Method::HEAD, path, handler)
    }

    pub fn post<F, Args>(&mut self, path: &'static str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(Method::POST, path, handler)
    }

    pub fn put<F, Args>(&mut self, path: &'static str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(Method::PUT, path, handler)
    }

    pub fn delete<F, Args>(&mut self, path: &'static str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route(Method::DELETE, path, handler)
    }
}

/// The `(method, path)` pairs a listener serves, in registration order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable(pub Vec<(Method, &'static str)>);

impl RouteTable {
    /// What `register` registers, without serving anything.
    pub fn of(register: impl FnOnce(&mut Routes<'_>)) -> RouteTable {
        let mut routes = Routes {
            cfg: None,
            listed: Vec::new(),
        };
        register(&mut routes);
        RouteTable(routes.listed)
    }

    /// The routes of the client listener.
    pub fn client() -> RouteTable {
        Self::of(crate::client_routes)
    }

    /// The routes of the admin listener.
    pub fn admin() -> RouteTable {
        Self::of(crate::admin_routes)
    }
}
