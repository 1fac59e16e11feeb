//! Step 4: the Worker: KV namespace, secrets, the bundle uploaded with its bindings (metadata,
//! upload) and the edge config document.

use hmac::{Hmac, Mac};
use rand::RngCore;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

use super::*;
use crate::cloudflare::client::{self, Client, KvNamespace, Part, Script, Subdomain};
use crate::cloudflare::store::{self, Step};
use crate::cloudflare::{Failure, bundle};

/// 32 random bytes in hex.
fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A public URL the admin gives: http(s), a host, no path, query or trailing slash.
fn check_public_url(url: &str) -> Result<String, Failure> {
    let trimmed = url.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(trimmed)
        .map_err(|_| Failure::invalid(format!("public_url {url:?} is not a URL")))?;
    let ok = matches!(parsed.scheme(), "https" | "http")
        && parsed.host_str().is_some()
        && parsed.path() == "/"
        && parsed.query().is_none()
        && parsed.fragment().is_none()
        && parsed.username().is_empty();
    if ok {
        Ok(trimmed.to_owned())
    } else {
        Err(Failure::invalid(format!(
            "public_url {url:?} must be scheme://host[:port], nothing after it"
        )))
    }
}

/// Step 4: KV namespace, the Worker's secrets, the bundle uploaded with its bindings, the URL,
/// and the edge config document.
pub(super) async fn worker(ctx: &mut Ctx, request: &Request) -> Result<(), Failure> {
    ctx.require(Step::VpcService).await?;
    let (client, a) = ctx.client().await?;
    let name = name_or(request, DEFAULT_WORKER)?;
    let db = ctx.state.db.clone();
    // KV namespace.
    let kv_title = format!("{name}-oauth");
    let kv_path = format!("/accounts/{a}/storage/kv/namespaces");
    let record = store::resource(&db, "kv_namespace").await?;
    let namespaces: Vec<KvNamespace> = client.list(&kv_path, &[]).await?;
    let alive = record
        .as_ref()
        .and_then(|r| r.id.as_deref())
        .is_some_and(|id| namespaces.iter().any(|n| n.id == id));
    let same_name = namespaces
        .iter()
        .find(|n| n.title == kv_title)
        .map(|n| n.id.clone());
    let kv_id = match plan(
        "kv_namespace",
        record.as_ref(),
        alive,
        &kv_title,
        same_name,
        request.replace,
    )? {
        Plan::Keep(id) => {
            ctx.say(format!("KV namespace {kv_title} exists ({id})"))
                .await?;
            id
        }
        other => {
            if let Plan::Replace(old) = other {
                client.delete(&format!("{kv_path}/{old}"), &[]).await?;
                ctx.say(format!("deleted the other KV namespace {kv_title} ({old})"))
                    .await?;
            }
            store::intend(&db, "kv_namespace", &kv_title).await?;
            let created: KvNamespace = client.post(&kv_path, json!({"title": kv_title})).await?;
            ctx.say(format!("KV namespace {kv_title} created ({})", created.id))
                .await?;
            created.id
        }
    };
    store::record(&db, "kv_namespace", &kv_title, &kv_id, None).await?;
    // Secrets generated here, once.
    for key in ["service_token", "worker_encryption_key"] {
        if ctx.secret(key).await?.is_none() {
            ctx.set_secret(key, &random_secret()).await?;
        }
    }
    ctx.say("service token and encryption key ready (stored encrypted)")
        .await?;
    // The public URL.
    if let Some(given) = &request.public_url {
        if given.trim().is_empty() {
            store::delete_values(&db, &["public_url"]).await?;
        } else {
            store::set_value(&db, "public_url", &check_public_url(given)?).await?;
        }
    }
    let (url, workers_dev) = match store::value(&db, "public_url").await? {
        Some(url) => (url, false),
        None => {
            let subdomain: Subdomain = match client
                .get(&format!("/accounts/{a}/workers/subdomain"))
                .await
            {
                Ok(found) => found,
                Err(err) if err.is_not_found() => Subdomain::default(),
                Err(err) => return Err(err.into()),
            };
            if subdomain.subdomain.is_empty() {
                return Err(Failure::invalid(
                    "this account has no workers.dev subdomain yet",
                )
                .hint("Open Workers & Pages in the dashboard once to choose one, or give a public_url, then run this step again."));
            }
            (
                format!("https://{name}.{}.workers.dev", subdomain.subdomain),
                true,
            )
        }
    };
    store::set_value(&db, "worker_name", &name).await?;
    store::set_value(&db, "worker_url", &url).await?;
    // The script.
    let scripts_path = format!("/accounts/{a}/workers/scripts");
    let record = store::resource(&db, "worker").await?;
    let scripts: Vec<Script> = client.list(&scripts_path, &[]).await?;
    let present = scripts.iter().any(|s| s.id == name);
    let ours = record
        .as_ref()
        .is_some_and(|r| r.id.as_deref() == Some(name.as_str()));
    let plan = plan(
        "worker",
        record.as_ref(),
        ours && present,
        &name,
        present.then(|| name.clone()),
        request.replace,
    )?;
    if let Plan::Replace(old) = &plan {
        client
            .delete(
                &format!("{scripts_path}/{old}"),
                &[("force", "true".to_owned())],
            )
            .await?;
        ctx.say(format!("deleted the other Worker named {old}"))
            .await?;
    }
    let uploaded = upload(ctx, &client, &a, &name, Some(matches!(plan, Plan::Keep(_)))).await?;
    if uploaded && workers_dev {
        let _: Value = client
            .post(
                &format!("{scripts_path}/{name}/subdomain"),
                json!({"enabled": true, "previews_enabled": false}),
            )
            .await?;
        ctx.say(format!("workers.dev route enabled: {url}")).await?;
    }
    ctx.say(format!("Worker URL {url}")).await?;
    let sync = crate::cloudflare::edge::sync(&ctx.state).await;
    match sync {
        Ok(()) => ctx.say("edge config written to KV").await?,
        Err(failure) => return Err(failure),
    }
    Ok(())
}

/// The metadata part and the keyed digest of everything uploaded (bundle and bindings).
async fn metadata(ctx: &Ctx) -> Result<(Value, String), Failure> {
    let db = &ctx.state.db;
    let missing = || Failure::conflict("step 4 (Worker) must be done first");
    let kv_id = store::resource(db, "kv_namespace")
        .await?
        .and_then(|r| r.id)
        .ok_or_else(missing)?;
    let service_id = store::resource(db, "vpc_service")
        .await?
        .and_then(|r| r.id)
        .ok_or_else(missing)?;
    let url = ctx.value("worker_url").await?.ok_or_else(missing)?;
    let service_token = ctx.secret("service_token").await?.ok_or_else(missing)?;
    let encryption_key = ctx
        .secret("worker_encryption_key")
        .await?
        .ok_or_else(missing)?;
    let plain = |name: &str, text: &str| json!({"type": "plain_text", "name": name, "text": text});
    let secret =
        |name: &str, text: &str| json!({"type": "secret_text", "name": name, "text": text});
    let mut bindings = vec![
        json!({"type": "kv_namespace", "name": "OAUTH_KV", "namespace_id": kv_id}),
        json!({"type": "vpc_service", "name": "ORIGIN", "service_id": service_id}),
        plain("MCPBOX_PUBLIC_URL", &url),
        plain("MCPBOX_ORIGIN_URL", ORIGIN_URL),
        secret("MCPBOX_SERVICE_TOKEN", &service_token),
        secret("MCPBOX_ENCRYPTION_KEY", &encryption_key),
    ];
    // Step 5's values, once it has run.
    if let (Some(team), Some(client_id), Some(client_secret)) = (
        ctx.value("team_domain").await?,
        ctx.value("access_client_id").await?,
        ctx.secret("access_client_secret").await?,
    ) {
        bindings.push(plain("ACCESS_TEAM_DOMAIN", &team));
        bindings.push(plain("ACCESS_CLIENT_ID", &client_id));
        bindings.push(secret("ACCESS_CLIENT_SECRET", &client_secret));
        if let Some(base) = &ctx.state.remote.config.access_url {
            let issuer = access_issuer(base, &client_id);
            bindings.push(plain("ACCESS_ISSUER", &issuer));
            bindings.push(plain(
                "ACCESS_AUTHORIZATION_URL",
                &format!("{issuer}/authorization"),
            ));
            bindings.push(plain("ACCESS_TOKEN_URL", &format!("{issuer}/token")));
            bindings.push(plain("ACCESS_JWKS_URL", &format!("{issuer}/jwks")));
        }
    }
    let metadata = json!({
        "main_module": "index.js",
        "compatibility_date": bundle::COMPATIBILITY_DATE,
        "bindings": bindings,
        "observability": {"enabled": true},
    });
    // Keyed: the digest covers secret values, so it must not be a plain hash of them.
    let key = ctx.state.keys.derive("cloudflare-upload-digest");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key)
        .map_err(|err| crate::Error::Internal(anyhow::anyhow!("hmac: {err}")))?;
    mac.update(bundle::sha256().as_bytes());
    mac.update(metadata.to_string().as_bytes());
    Ok((metadata, hex::encode(mac.finalize().into_bytes())))
}

pub fn access_issuer(base: &str, client_id: &str) -> String {
    format!(
        "{}/cdn-cgi/access/sso/oidc/{client_id}",
        base.trim_end_matches('/')
    )
}

/// Uploads the bundle with its bindings unless exactly this was uploaded already and the
/// script is still there (`present`: known already, or `None` to ask Cloudflare). Returns
/// whether it uploaded.
pub(super) async fn upload(
    ctx: &mut Ctx,
    client: &Client,
    a: &str,
    name: &str,
    present: Option<bool>,
) -> Result<bool, Failure> {
    let db = ctx.state.db.clone();
    let (metadata, digest) = metadata(ctx).await?;
    let record = store::resource(&db, "worker").await?;
    let unchanged = record
        .as_ref()
        .is_some_and(|r| r.id.as_deref() == Some(name) && r.digest.as_deref() == Some(&digest));
    let present = match present {
        Some(known) => known,
        None if unchanged => client
            .list::<Script>(&format!("/accounts/{a}/workers/scripts"), &[])
            .await?
            .iter()
            .any(|s| s.id == name),
        None => false,
    };
    if present && unchanged {
        ctx.say(format!(
            "Worker {name} is up to date (bundle and bindings unchanged)"
        ))
        .await?;
        return Ok(false);
    }
    let metadata_bytes = metadata.to_string().into_bytes();
    let body = client::multipart(&[
        Part {
            name: "metadata",
            filename: None,
            content_type: "application/json",
            bytes: &metadata_bytes,
        },
        Part {
            name: "index.js",
            filename: Some("index.js"),
            content_type: "application/javascript+module",
            bytes: bundle::INDEX_JS,
        },
        Part {
            name: "index_bg.wasm",
            filename: Some("index_bg.wasm"),
            content_type: "application/wasm",
            bytes: bundle::INDEX_BG_WASM,
        },
    ]);
    store::intend(&db, "worker", name).await?;
    let _: Script = client
        .request(
            Method::PUT,
            &format!("/accounts/{a}/workers/scripts/{name}"),
            &[],
            &body,
        )
        .await?;
    store::record(&db, "worker", name, name, Some(&digest)).await?;
    ctx.say(format!(
        "Worker {name} uploaded (bundle {}, {} KiB)",
        &bundle::sha256()[..12],
        (bundle::INDEX_JS.len() + bundle::INDEX_BG_WASM.len()) / 1024
    ))
    .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_are_bare_origins() {
        assert_eq!(
            check_public_url("https://mcp.example.com/").unwrap(),
            "https://mcp.example.com"
        );
        assert_eq!(
            check_public_url("http://127.0.0.1:8787").unwrap(),
            "http://127.0.0.1:8787"
        );
        for bad in [
            "ftp://x.example",
            "https://x.example/path",
            "not a url",
            "https://x.example/?q",
        ] {
            assert!(check_public_url(bad).is_err(), "{bad}");
        }
    }
}
