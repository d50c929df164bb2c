//! `util worker token create | list | revoke`, through the REST API.

use clap::Subcommand;
use reqwest::Method;

use super::{decode, iso, table, Api};
use crate::db::tokens::TokenRow;
use crate::rest::tokens::TokenCreated;

#[derive(Debug, Subcommand)]
pub enum TokenSub {
    /// Make a worker's token and print it once on stdout (the manager keeps only its hash).
    /// Give it to the worker: [sector_manager] rpc_client.token_file, or
    /// rpc_client.headers = { Authorization = "Bearer <token>" }
    Create {
        /// The worker's name: its [worker] name, or its IP when that is unset
        name: String,
    },
    /// Every worker token: when it was made, and whether it is revoked
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a worker's token: its calls are refused from now on
    Revoke { name: String },
}

impl TokenSub {
    pub async fn run(self, api: &Api) -> anyhow::Result<()> {
        match self {
            TokenSub::Create { name } => {
                let r = api
                    .call(Method::POST, &format!("/workers/{name}/token"), None)
                    .await?;
                let r: TokenCreated = decode("token create", r)?;
                // The token alone on stdout, so it can go straight into a file.
                println!("{}", r.token);
                eprintln!("token of worker {name} created: it is shown only now");
                Ok(())
            }
            TokenSub::List { json } => {
                let rows = api.call(Method::GET, "/tokens", None).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                    return Ok(());
                }
                let rows: Vec<TokenRow> = decode("GET /tokens", rows)?;
                let rows = rows
                    .into_iter()
                    .map(|t| {
                        let state = match &t.revoked_at {
                            None => "active".to_string(),
                            Some(at) => format!("revoked {}", iso(at)),
                        };
                        vec![t.worker_name, iso(&t.created_at), state]
                    })
                    .collect();
                table("Worker\tCreated\tState", rows)
            }
            TokenSub::Revoke { name } => {
                api.call(Method::DELETE, &format!("/workers/{name}/token"), None)
                    .await?;
                println!("token of worker {name} revoked");
                Ok(())
            }
        }
    }
}
