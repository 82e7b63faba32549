//! Startup: opens the store, mounts every dialect and serves until stopped; used by `main` and the tests alike.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::{NormalizePath, TrailingSlash, from_fn};
use actix_web::{App, HttpServer, web};

use crate::auth::internal::InternalSecret;
use crate::config::Settings;
use crate::core::Core;
use crate::dialect;
use crate::http::{State, request_log};
use crate::store::Store;

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Opens the store, binds the listener and builds the server; `run` then serves until stopped.
    pub fn build(settings: Settings) -> std::io::Result<Application> {
        let store = Store::open(&settings.db).map_err(std::io::Error::other)?;
        let core = Core::new(store, settings.policy.clone());
        let internal_secret = InternalSecret::read_or_create(&settings.internal_secret_path())?;
        let listener = TcpListener::bind(&settings.listen)?;
        let port = listener.local_addr()?.port();
        let state = web::Data::new(State {
            core,
            public_url: settings
                .public_url
                .as_deref()
                .map(|u| u.trim_end_matches('/').to_string()),
            internal_secret,
        });
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(NormalizePath::new(TrailingSlash::MergeOnly))
                .wrap(from_fn(request_log))
                .configure(dialect::configure)
        })
        .listen(listener)?;
        if settings.workers > 0 {
            server = server.workers(settings.workers);
        }
        Ok(Application {
            port,
            server: server.run(),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM (actix stops gracefully on both) or the handle stops it.
    pub async fn run(self) -> std::io::Result<()> {
        self.server.await
    }

    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}
