//! `mcpbox admin …`: account management without the web UI.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;

use crate::activity::Audit;
use crate::app::open_storage;
use crate::auth::password::{NewPassword, Passwords, Username};
use crate::config::{AdminCommand, McpKeyCommand, StorageArgs};
use crate::{mcp_keys, users};

pub async fn run(command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Create {
            storage,
            username,
            role,
        } => {
            let username = Username::parse(&username)?;
            let password = read_password()?;
            let (db, _) = open_storage(&storage).await?;
            let user =
                users::create(&db, &Passwords::default(), &username, &password, role).await?;
            println!("created {} account {}", user.role, user.username);
        }
        AdminCommand::Reencrypt { storage } => {
            let (db, keys) = open_storage(&storage).await?;
            let report = crate::secrets::rotation::reencrypt(&db, &keys).await?;
            println!(
                "re-encrypted {} value(s); {} already under the current key; {} changed meanwhile (kept); {} under no configured key",
                report.reencrypted, report.current, report.changed_meanwhile, report.undecryptable
            );
            if report.previous_key_unused() {
                println!(
                    "nothing needs the previous key any more: MCPBOX_PREVIOUS_ENCRYPTION_KEY can go"
                );
            } else {
                anyhow::bail!(
                    "{} value(s) open with neither key: they keep needing the key that wrote them (or set them again)",
                    report.undecryptable
                );
            }
        }
        AdminCommand::McpKey { command } => mcp_key(command).await?,
        AdminCommand::ResetPassword { storage, username } => {
            let password = read_password()?;
            let (db, _) = open_storage(&storage).await?;
            let (user, _) = users::find_for_login(&db, &username)
                .await?
                .with_context(|| format!("there is no account named {username:?}"))?;
            users::set_password(&db, &Passwords::default(), &user.id, &password).await?;
            println!(
                "password of {} reset; every earlier session is signed out",
                user.username
            );
        }
    }
    Ok(())
}

/// `mcpbox admin mcp-key …`: the same domain functions as Settings → MCP client keys; the
/// activity log names the command line as the actor.
async fn mcp_key(command: McpKeyCommand) -> anyhow::Result<()> {
    let audit = Audit {
        actor: "cli".into(),
        request_id: None,
    };
    match command {
        McpKeyCommand::Create { storage, name } => {
            let (db, _) = open_storage(&storage).await?;
            let (issued, event) = mcp_keys::issue(&db, &name, &audit).await?;
            crate::db::events::announce(&db, &event).await?;
            println!("{}", issued.secret);
            eprintln!(
                "issued MCP client key {} ({}): the line above is the key, shown this once; clients send it as `Authorization: Bearer <key>`",
                issued.key.name,
                issued.key.shown()
            );
        }
        McpKeyCommand::List { storage } => {
            let (db, _) = open_storage(&storage).await?;
            for key in mcp_keys::list(&db).await? {
                let state = match &key.revoked_at {
                    Some(at) => format!("revoked {at}"),
                    None => "valid".into(),
                };
                println!(
                    "{}\t{}\t{}\t{}\tlast used {}",
                    key.id,
                    key.name,
                    key.shown(),
                    state,
                    key.last_used_at.as_deref().unwrap_or("never")
                );
            }
        }
        McpKeyCommand::Revoke { storage, key } => {
            let (db, _) = open_storage(&storage).await?;
            let found = mcp_keys::find(&db, &key).await?;
            let (revoked, event) = mcp_keys::revoke(&db, &found.id, &audit).await?;
            crate::db::events::announce(&db, &event).await?;
            println!(
                "revoked MCP client key {} ({}); a running origin refuses it within {} s (at once on PostgreSQL)",
                revoked.name,
                revoked.shown(),
                mcp_keys::CACHE_TTL.as_secs()
            );
        }
    }
    Ok(())
}

/// `mcpbox backup --to FILE`.
pub async fn backup(storage: StorageArgs, to: PathBuf, force: bool) -> anyhow::Result<()> {
    let (db, _) = open_storage(&storage).await?;
    let report = crate::backup::create(&db, &to, force).await?;
    println!(
        "backed up the {} database (schema version {}) to {}: {} bytes in {:.1} s ({})",
        report.backend.name(),
        report.schema_version,
        to.display(),
        report.bytes,
        report.elapsed.as_secs_f64(),
        report.summary()
    );
    println!("the encryption key is not in the backup: keep it with the file, secrets need it");
    Ok(())
}

/// `mcpbox restore --from FILE`. Opens the database itself (not through `open_storage`): a
/// SQLite restore replaces the file, so no pool may stay open on it.
pub async fn restore(storage: StorageArgs, from: PathBuf, force: bool) -> anyhow::Result<()> {
    crate::app::prepare_data_dir(&storage.data_dir)?;
    let report = crate::backup::restore(&storage.database_url(), &from, force).await?;
    println!(
        "restored {} into the {} database in {:.1} s: {}",
        from.display(),
        report.backend.name(),
        report.elapsed.as_secs_f64(),
        report.summary()
    );
    Ok(())
}

/// From MCPBOX_ADMIN_PASSWORD, else the first line of standard input (never a flag: flags show
/// up in `ps` and shell history).
fn read_password() -> anyhow::Result<NewPassword> {
    let text = match std::env::var("MCPBOX_ADMIN_PASSWORD") {
        Ok(text) => text,
        Err(_) => {
            eprintln!("password (one line on standard input):");
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("could not read the password")?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    Ok(NewPassword::parse(&text)?)
}
