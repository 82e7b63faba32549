//! Request parameters: the query string merged with a JSON or form-encoded body, read with a size cap.

use actix_web::web;
use futures_util::StreamExt;
use serde_json::{Map, Value};

/// Largest request body read; deploy-key requests are a few kilobytes at most.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("request body is too large")]
    TooLarge,
    #[error("request body is not valid JSON")]
    BadJson,
    #[error("request body is not valid form data")]
    BadForm,
    #[error("query string is not valid")]
    BadQuery,
}

/// Reads the whole body, refusing it as soon as it passes the cap.
pub async fn read_body(mut payload: web::Payload) -> Result<web::Bytes, BodyError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| BodyError::BadJson)?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// A parameter was present but not of the type asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongType;

/// Named parameters from the query string and the body, body winning, as Rails and Grape merge them.
#[derive(Default, Clone)]
pub struct Params {
    map: Map<String, Value>,
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: values include tokens (`private_token`) and key text.
        f.debug_set().entries(self.map.keys()).finish()
    }
}

impl Params {
    pub fn parse(
        query: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Params, BodyError> {
        let mut map = Map::new();
        for (k, v) in parse_query(query)? {
            map.insert(k, Value::String(v));
        }
        let mime = content_type
            .and_then(|ct| ct.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if mime == "application/x-www-form-urlencoded" {
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(body).map_err(|_| BodyError::BadForm)?;
            for (k, v) in pairs {
                map.insert(k, Value::String(v));
            }
        } else if !body.iter().all(u8::is_ascii_whitespace) {
            // Clients that send JSON do not always say so; anything that is not a form is read as JSON.
            match serde_json::from_slice::<Value>(body).map_err(|_| BodyError::BadJson)? {
                Value::Object(obj) => map.extend(obj),
                _ => return Err(BodyError::BadJson),
            }
        }
        Ok(Params { map })
    }

    pub fn from_query(query: &str) -> Result<Params, BodyError> {
        Params::parse(query, None, b"")
    }

    pub fn has(&self, name: &str) -> bool {
        self.map.get(name).is_some_and(|v| !v.is_null())
    }

    pub fn raw(&self, name: &str) -> Option<&Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// A string parameter; numbers and booleans are taken as their text, like Grape's coercion.
    pub fn string(&self, name: &str) -> Result<Option<String>, WrongType> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(WrongType),
        }
    }

    /// A boolean in any spelling Grape accepts: `true/false`, `True`, `1/0`, `t/f`, `yes/no`, `on/off`.
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, WrongType> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(1) => Ok(Some(true)),
                Some(0) => Ok(Some(false)),
                _ => Err(WrongType),
            },
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "t" | "1" | "yes" | "y" | "on" => Ok(Some(true)),
                "false" | "f" | "0" | "no" | "n" | "off" => Ok(Some(false)),
                _ => Err(WrongType),
            },
            Some(_) => Err(WrongType),
        }
    }

    /// A non-negative integer, given as a JSON number or as decimal text.
    pub fn integer(&self, name: &str) -> Result<Option<i64>, WrongType> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(WrongType),
            Some(Value::String(s)) => s.trim().parse::<i64>().map(Some).map_err(|_| WrongType),
            Some(_) => Err(WrongType),
        }
    }

    /// Every parameter that is plain text, for rebuilding pagination links.
    pub fn text_pairs(&self) -> Vec<(String, String)> {
        self.map
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect()
    }
}

pub fn parse_query(query: &str) -> Result<Vec<(String, String)>, BodyError> {
    serde_urlencoded::from_str(query).map_err(|_| BodyError::BadQuery)
}
