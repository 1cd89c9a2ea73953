//! `context`: docker CLI contexts for machines (`docker --context NAME …`).

use hoist::context::Context;
use hoist::error::{Error, Result};
use hoist::ops::{self, docker_context};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The context's name (default: the machine's); for one machine
    #[arg(long)]
    context_name: Option<String>,
    names: Vec<String>,
}

pub async fn exec(args: Args, ctx: &Context) -> Result<u8> {
    let names = super::target_names(ctx, args.names)?;
    if args.context_name.is_some() && names.len() > 1 {
        return Err(Error::Usage(
            "Error: --context-name names the context of one machine".into(),
        ));
    }
    let ctx2 = ctx.clone();
    let context_name = args.context_name;
    let results = ops::for_each_machine(&names, move |name| {
        let (ctx, context_name) = (ctx2.clone(), context_name.clone());
        async move {
            let written = docker_context::write(&ctx, &name, context_name.as_deref()).await?;
            Ok(format!(
                "Docker context \"{written}\" reaches machine \"{name}\": docker --context {written} info"
            ))
        }
    })
    .await;
    super::print_each(results)
}
