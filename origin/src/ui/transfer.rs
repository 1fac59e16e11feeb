//! Export and import (admin only): the download of the signed export, and the upload form of an
//! import (multipart: the CSRF field must come first and is checked before the file is read).
//! The import's report is shown on the page that answers the upload.

use askama::Template;
use axum::Router;
use axum::extract::multipart::Field;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::routing::{get, post};

use super::{CSRF_FIELD, Chrome, Page, Ui, failed, page, same};
use crate::app::AppState;
use crate::auth::Role;
use crate::error::Error;
use crate::transfer::{self, MAX_FILE_BYTES, Report};

const PAGE: &str = "/ui/transfer";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PAGE, get(show))
        .route("/ui/transfer/export", get(export))
        .route(
            "/ui/transfer/import",
            // The file plus the small fields and the multipart framing.
            post(import).layer(DefaultBodyLimit::max(MAX_FILE_BYTES + 64 * 1024)),
        )
}

#[derive(Template)]
#[template(path = "transfer.html")]
struct TransferPage {
    chrome: Chrome,
    max_mib: usize,
    report: Option<Report>,
}

async fn show(ui: Ui) -> Page {
    ui.require(Role::Admin)?;
    page(&TransferPage {
        chrome: ui.chrome("transfer"),
        max_mib: MAX_FILE_BYTES / (1024 * 1024),
        report: None,
    })
}

async fn export(State(state): State<AppState>, ui: Ui) -> Page {
    ui.require(Role::Admin)?;
    Ok(crate::transfer::api::download(&state, &ui.audit()).await?)
}

async fn import(
    State(state): State<AppState>,
    ui: Ui,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let result = async {
        ui.require(Role::Admin)?;
        same_origin(&headers)?;
        let mut multipart =
            multipart.map_err(|_| Error::BadRequest("expected the import form".into()))?;
        // The token first: nothing else is read from a form that fails it.
        let first = next_field(&mut multipart).await?;
        let token = match first {
            Some(field) if field.name() == Some(CSRF_FIELD) => text(field).await?,
            _ => String::new(),
        };
        if !same(&token, &ui.csrf) {
            return Err(Error::Forbidden(
                "this form is out of date or was not sent by this site: reload the page and try again",
            ));
        }
        let mut file = None;
        let mut source_key = String::new();
        while let Some(field) = next_field(&mut multipart).await? {
            match field.name() {
                Some("file") => file = Some(field.bytes().await.map_err(too_large)?),
                Some("source_key") => source_key = text(field).await?,
                _ => {}
            }
        }
        let Some(file) = file.filter(|f| !f.is_empty()) else {
            return Err(Error::Validation("choose an export file to import".into()));
        };
        let parsed = transfer::parse(&file)?;
        transfer::import_file(&state, &ui.audit(), parsed, Some(source_key.trim())).await
    }
    .await;
    match result {
        Ok(report) => match page(&TransferPage {
            chrome: ui.chrome("transfer"),
            max_mib: MAX_FILE_BYTES / (1024 * 1024),
            report: Some(report),
        }) {
            Ok(response) => response,
            Err(err) => super::error_page(Some(&ui), err.0),
        },
        // A refused token is refused like every form's: a 403 page, nothing else read.
        Err(err @ Error::Forbidden(_)) => super::error_page(Some(&ui), err),
        Err(err) => failed(PAGE, err),
    }
}

async fn next_field(multipart: &mut Multipart) -> Result<Option<Field<'_>>, Error> {
    multipart.next_field().await.map_err(too_large)
}

async fn text(field: Field<'_>) -> Result<String, Error> {
    let text = field.text().await.map_err(too_large)?;
    Ok(text.chars().take(1024).collect())
}

/// A multipart error: almost always the size limit (anything else is a malformed upload).
fn too_large(err: axum::extract::multipart::MultipartError) -> Error {
    if err.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        Error::PayloadTooLarge {
            limit: MAX_FILE_BYTES,
        }
    } else {
        Error::BadRequest(format!("the upload could not be read: {}", err.body_text()))
    }
}

/// The same check as `Form`'s: a form posted from another site names it in `Origin`.
fn same_origin(headers: &HeaderMap) -> Result<(), Error> {
    let Some(origin) = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|origin| *origin != "null")
    else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
    if origin_host == host {
        Ok(())
    } else {
        Err(Error::Forbidden("this form was posted from another site"))
    }
}
