//! Step 3: the Workers VPC service through the tunnel.

use serde_json::{Value, json};

use super::*;
use crate::cloudflare::Failure;
use crate::cloudflare::client::VpcService;
use crate::cloudflare::store::{self, Step};

/// The VPC service's `host`: an address on the tunnel's network, or a name its resolver finds.
fn vpc_host(host: &str, tunnel_id: &str) -> Value {
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        json!({"ipv4": host, "network": {"tunnel_id": tunnel_id}})
    } else {
        json!({"hostname": host, "resolver_network": {"tunnel_id": tunnel_id}})
    }
}

/// Step 3: the Workers VPC service pointing at the tunnel listener through the tunnel.
pub(super) async fn vpc_service(ctx: &mut Ctx, request: &Request) -> Result<(), Failure> {
    ctx.require(Step::Tunnel).await?;
    let (client, a) = ctx.client().await?;
    let name = name_or(request, DEFAULT_VPC_SERVICE)?;
    let db = ctx.state.db.clone();
    let Some(tunnel_id) = store::resource(&db, "tunnel").await?.and_then(|r| r.id) else {
        return Err(Failure::conflict("step 2 (Tunnel) must be done first"));
    };
    let listen = ctx.state.remote.tunnel_bound.get().copied().or(ctx
        .state
        .remote
        .config
        .tunnel_listen);
    let host = match request
        .host
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty())
    {
        Some(host) => host.to_owned(),
        None => match listen {
            Some(addr) if !addr.ip().is_unspecified() && addr.ip().is_ipv4() => {
                addr.ip().to_string()
            }
            _ => "127.0.0.1".to_owned(),
        },
    };
    if host.len() > 253
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        return Err(Failure::invalid(format!(
            "host {host:?} is not an IPv4 address or a host name"
        )));
    }
    let Some(port) = request.port.or(listen.map(|addr| addr.port())) else {
        return Err(Failure::invalid(
            "no port: start mcpbox with --tunnel-listen, or give the port cloudflared reaches the tunnel listener on",
        ));
    };
    let body = json!({"name": name, "type": "http", "http_port": port, "host": vpc_host(&host, &tunnel_id)});
    let path = format!("/accounts/{a}/connectivity/directory/services");
    let record = store::resource(&db, "vpc_service").await?;
    let services: Vec<VpcService> = client.list(&path, &[]).await?;
    let recorded = record
        .as_ref()
        .and_then(|r| r.id.as_deref())
        .and_then(|id| services.iter().find(|s| s.service_id == id));
    let same_name = services
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.service_id.clone());
    let id = match plan(
        "vpc_service",
        record.as_ref(),
        recorded.is_some(),
        &name,
        same_name,
        request.replace,
    )? {
        Plan::Keep(id) => {
            let current = services.iter().find(|s| s.service_id == id);
            let same = current.is_some_and(|s| s.http_port == Some(port) && s.host == body["host"]);
            if same {
                ctx.say(format!("VPC service {name} exists ({id}) → {host}:{port}"))
                    .await?;
            } else {
                let _: VpcService = client.put(&format!("{path}/{id}"), body.clone()).await?;
                ctx.say(format!(
                    "VPC service {name} ({id}) now points at {host}:{port}"
                ))
                .await?;
            }
            id
        }
        other => {
            if let Plan::Replace(old) = other {
                client.delete(&format!("{path}/{old}"), &[]).await?;
                ctx.say(format!(
                    "deleted the other VPC service named {name} ({old})"
                ))
                .await?;
            }
            store::intend(&db, "vpc_service", &name).await?;
            let created: VpcService = client.post(&path, body).await?;
            ctx.say(format!(
                "VPC service {name} created ({}) → {host}:{port} through the tunnel",
                created.service_id
            ))
            .await?;
            created.service_id
        }
    };
    store::record(&db, "vpc_service", &name, &id, None).await?;
    Ok(())
}
