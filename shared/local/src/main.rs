//! The `switchboard` command.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use switchboard_app::Config;
use switchboard_app::local::load_knowledge_base;
use switchboard_domain::error_chain;
use switchboard_domain::{Clock, Language, QueueName, SystemClock};
use switchboard_faq::KnowledgeBase;
use switchboard_local::bench::{self, BenchCommand};
use switchboard_local::check::{self, CheckArgs};
use switchboard_local::output::Stdout;
use switchboard_local::simulate::{self, SimulateArgs};
use switchboard_pipeline::faq::Faq;
use switchboard_sqlite::SqliteStore;

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Multichannel customer-service connector"
)]
struct Cli {
    /// Config file (TOML). Default: $SWITCHBOARD_CONFIG, else ./switchboard.toml if present.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the local server: every webhook route, the workers, the embedded database.
    Serve {
        /// Logs as JSON lines, or as text for people; `auto`: text on a terminal.
        #[arg(long, value_enum, default_value_t = LogFormat::Auto)]
        log_format: LogFormat,
    },
    /// Tools for channel set-up.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Post a correctly signed sample webhook to a running server.
    Simulate(SimulateArgs),
    /// The knowledge base.
    #[command(subcommand)]
    Kb(KbCommand),
    /// Ask the FAQ matcher.
    #[command(subcommand)]
    Faq(FaqCommand),
    /// The embedded queues.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Access tokens for the agents' API.
    #[command(subcommand)]
    Token(TokenCommand),
    /// One customer's data: everything stored, or its erasure.
    #[command(subcommand)]
    Customer(CustomerCommand),
    /// Speed and memory figures, as JSON (`bench peer` for the SDK harness).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Volume, peak hours, resolution and escalation, response times, service
    /// levels, satisfaction, top and unanswered questions, A/B variants: a
    /// summary on a terminal, JSON with --json or when piped, a page with --html.
    Report {
        /// The period: the last N days (every section), 1 to 3650.
        #[arg(long, default_value_t = 30, value_parser = days())]
        days: u32,
        /// How many top and unanswered questions to list.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// Print JSON (the default when the output is not a terminal).
        #[arg(long)]
        json: bool,
        /// Write the report as one self-contained HTML page to FILE.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Read the AWS stack's tables (the `SWITCHBOARD_AWS__*` variables or `[aws]`).
        #[arg(long)]
        aws: bool,
    },
    /// A/B experiments (`[experiments.<name>]`).
    #[command(subcommand)]
    Experiments(ExperimentsCommand),
}

#[derive(Subcommand)]
enum ExperimentsCommand {
    /// Per experiment and variant: conversations, bot resolution, escalation,
    /// helpful rate, mean CSAT with 95% intervals, and the p-value of bot
    /// resolution against the baseline variant; JSON.
    Report {
        /// The period: the last N days, 1 to 3650.
        #[arg(long, default_value_t = 30, value_parser = days())]
        days: u32,
        /// Read the AWS stack's tables.
        #[arg(long)]
        aws: bool,
    },
}

/// `--days`: at least one, at most ten years (the reports' dates start in 1970).
fn days() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..=3650)
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Auto,
    Json,
    Text,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a new token. It is printed once; only its SHA-256 goes in the configuration.
    Create {
        /// Who will hold it (shown in logs).
        #[arg(long)]
        name: String,
        /// `agent`: conversations; `admin`: also customers' data, export, erase, knowledge base.
        #[arg(long, value_enum)]
        scope: TokenScope,
        /// Print one JSON object instead of instructions.
        #[arg(long)]
        json: bool,
    },
    /// The tokens the configuration holds: who, scope, and the start of the
    /// SHA-256 (never a token). A running `serve` accepts these within seconds
    /// of a change to the file.
    List {
        /// JSON lines (the default when the output is not a terminal).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum CustomerCommand {
    /// Print everything stored about the customer as one JSON document.
    Export(CustomerArgs),
    /// Remove everything stored about the customer; prints what was removed.
    Erase(CustomerArgs),
}

#[derive(clap::Args)]
struct CustomerArgs {
    /// `channel:customer_id`, as in escalation mails (e.g. telegram:123456789).
    customer: String,
    /// The AWS stack's tables (named by the `SWITCHBOARD_AWS__*` variables or
    /// `[aws]`), with the caller's AWS credentials, instead of the local database.
    #[arg(long)]
    aws: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum TokenScope {
    Agent,
    Admin,
}

#[derive(Subcommand)]
enum WebhookCommand {
    /// Verify and normalise one captured request offline. Exit 0: authentic; 1: not
    /// authentic; 2: bad usage; 3: authentic but unreadable.
    Check(CheckArgs),
}

#[derive(Subcommand)]
enum KbCommand {
    /// Import a knowledge base (JSONL or YAML): it replaces the one in use (or,
    /// with --merge, adds and updates entries by id); a running `serve` picks
    /// it up within seconds. Every entry needs an answer.
    Import {
        file: PathBuf,
        /// Keep the entries the file does not mention: entries with the same id
        /// are replaced, new ones added.
        #[arg(long)]
        merge: bool,
        /// Put it in this DynamoDB knowledge-base table instead (the stack's
        /// `KnowledgeBaseTableName` output); the workers use it from their next cold start.
        #[cfg(feature = "aws")]
        #[arg(long, value_name = "TABLE")]
        dynamodb_table: Option<String>,
    },
    /// Print the knowledge base in use as JSONL.
    Export,
    /// Customer questions the FAQ could not answer, most frequent first:
    /// those not answered apart from those answered with the offer of a person.
    Gaps {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// The period: the last N days, 1 to 3650.
        #[arg(long, default_value_t = 30, value_parser = days())]
        days: u32,
        /// JSON lines (the default when the output is not a terminal).
        #[arg(long)]
        json: bool,
        /// Read the AWS stack's tables.
        #[arg(long)]
        aws: bool,
    },
    /// Proposed entries, most valuable first: unanswered questions grouped by
    /// similar wording, with the agent's answer where a person took over; and
    /// entries with many "not helpful" votes. Changes nothing.
    Suggest {
        /// The period: the last N days, 1 to 3650.
        #[arg(long, default_value_t = 30, value_parser = days())]
        days: u32,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Write the proposed entries as knowledge-base JSONL to FILE, to edit
        /// and `kb import --merge`.
        #[arg(long, value_name = "FILE")]
        export: Option<PathBuf>,
        /// Read the AWS stack's tables.
        #[arg(long)]
        aws: bool,
    },
}

#[derive(Subcommand)]
enum FaqCommand {
    /// Show what the bot would answer.
    Ask {
        question: String,
        /// Knowledge base file; default: the one `serve` uses.
        #[arg(long)]
        kb: Option<PathBuf>,
    },
    /// Score the matcher on labelled queries (the metrics of the FAQ benchmark).
    Eval(switchboard_faq::cli::EvalArgs),
    /// Rank queries: one JSON line each, with what the product would do.
    Rank(switchboard_faq::cli::RankArgs),
}

#[derive(Subcommand)]
enum QueueCommand {
    /// Items per state in every queue, dead letters included.
    Stats,
    /// Put a queue's dead letters back in line.
    Redrive { queue: String },
    /// The dead letters, the most recently failed first: queue, id, attempts,
    /// when enqueued and when failed, cause and last error; never a body.
    DeadLetters {
        /// Only this queue's (inbound, escalation_priority, escalation_standard, timers, outbound).
        #[arg(long)]
        queue: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        /// JSON lines (the default when the output is not a terminal).
        #[arg(long)]
        json: bool,
    },
}

/// The embedded queue called `name`, or an error listing the names.
fn queue_named(name: &str) -> anyhow::Result<QueueName> {
    QueueName::ALL
        .into_iter()
        .find(|q| q.as_str() == name)
        .with_context(|| format!("unknown queue {name:?}; one of inbound, escalation_priority, escalation_standard, timers, outbound"))
}

fn main() -> ExitCode {
    // The start of a cold start, as `bench peer cold` reports it.
    let entry_ns = bench::monotonic_ns();
    let cli = Cli::parse();
    // Synchronous, before any runtime or configuration: what a cold Lambda
    // with one channel would do.
    if let Command::Bench(BenchCommand::Peer(command)) = &cli.command {
        return match bench::peer::run(command, entry_ns) {
            Ok(report) => match writeln!(Stdout, "{report}") {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::from(1),
            },
            Err(error) => {
                eprintln!("error: {}", error_chain(&error));
                ExitCode::from(1)
            }
        };
    }
    init_tracing(match cli.command {
        Command::Serve { log_format } => Some(log_format),
        _ => None,
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        match run(cli).await {
            Ok(code) => code,
            Err(error) => {
                eprintln!("error: {}", error_chain(error.as_ref()));
                ExitCode::from(1)
            }
        }
    })
}

/// Serving: info and up, as JSON lines unless people read them on a
/// terminal; other commands: warnings, as text.
fn init_tracing(serving: Option<LogFormat>) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let default = if serving.is_some() { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let json = match serving {
        None | Some(LogFormat::Text) => false,
        Some(LogFormat::Json) => true,
        Some(LogFormat::Auto) => !std::io::stderr().is_terminal(),
    };
    if json {
        builder.json().with_current_span(false).init();
    } else {
        builder.init();
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve { .. } => switchboard_local::server::serve(config).await?,
        Command::Webhook(WebhookCommand::Check(args)) => {
            return Ok(match check::check(&args) {
                Ok((report, verdict)) => {
                    writeln!(Stdout, "{}", serde_json::to_string_pretty(&report)?)?;
                    ExitCode::from(verdict as u8)
                }
                Err(usage) => {
                    eprintln!("error: {}", error_chain(&usage));
                    ExitCode::from(2)
                }
            });
        }
        Command::Simulate(args) => return simulate::run(&config, &args).await,
        Command::Kb(command) => kb(&config, command).await?,
        Command::Faq(FaqCommand::Ask { question, kb }) => {
            let knowledge_base = match kb {
                // What the bot would answer from: the checks of `kb import`.
                Some(path) => KnowledgeBase::load_answerable(&path)
                    .with_context(|| format!("loading {}", path.display()))?,
                None => load_knowledge_base(&config, &open_store(&config)?).await?,
            };
            let faq = Faq::new(knowledge_base);
            let language = Language::detect(&question);
            let candidates = faq.candidates(&question, language, 3);
            let decision = config.routing.routing.decide(
                switchboard_domain::Tier::Regular,
                language,
                &question,
                candidates.first(),
            );
            let verdict = match &decision {
                switchboard_domain::Decision::Answer {
                    offer_human: false, ..
                } => "answer".to_owned(),
                switchboard_domain::Decision::Answer {
                    offer_human: true, ..
                } => "answer_and_offer_person".to_owned(),
                switchboard_domain::Decision::Escalate { reason } => {
                    format!("hand_over:{}", reason.as_str())
                }
            };
            let report = serde_json::json!({
                "language": language.code(),
                "decision": verdict,
                "candidates": candidates,
            });
            writeln!(Stdout, "{}", serde_json::to_string_pretty(&report)?)?;
        }
        Command::Faq(FaqCommand::Eval(args)) => switchboard_faq::cli::run_eval(&args, &mut Stdout)?,
        Command::Faq(FaqCommand::Rank(args)) => switchboard_faq::cli::run_rank(&args, &mut Stdout)?,
        Command::Report {
            days,
            top,
            json,
            html,
            aws,
        } => {
            use switchboard_pipeline::report;
            let (records, labels) = insight_sources(&config, aws).await?;
            let records = report::read(
                records.as_ref(),
                report::Window::last_days(days, SystemClock.now_ms()),
            )
            .await?;
            let report = report::build(&report::ReportInput {
                sessions: &records.sessions,
                feedback: &records.feedback,
                from_ms: records.from_ms,
                to_ms: records.to_ms,
                top,
                sla: &config.sla,
                experiments: &config.experiments,
                labels: &labels,
            });
            if let Some(path) = html {
                std::fs::write(&path, switchboard_pipeline::report_html::render(&report))
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("report written to {}", path.display());
            } else if json || !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                writeln!(Stdout, "{}", serde_json::to_string_pretty(&report)?)?;
            } else {
                write!(Stdout, "{}", report::summary(&report))?;
            }
        }
        Command::Experiments(ExperimentsCommand::Report { days, aws }) => {
            use switchboard_pipeline::report;
            let (records, _) = insight_sources(&config, aws).await?;
            let records = report::read(
                records.as_ref(),
                report::Window::last_days(days, SystemClock.now_ms()),
            )
            .await?;
            let results = report::experiment_results(
                &config.experiments,
                &records.sessions,
                &records.feedback,
            );
            #[derive(serde::Serialize)]
            struct Output {
                from: String,
                to: String,
                experiments: Vec<report::ExperimentResult>,
            }
            let output = Output {
                from: report::date(records.from_ms),
                to: report::date(records.to_ms),
                experiments: results,
            };
            writeln!(Stdout, "{}", serde_json::to_string_pretty(&output)?)?;
        }
        Command::Token(TokenCommand::Create { name, scope, json }) => {
            use switchboard_pipeline::access::{Scope, generate_token, token_sha256};
            anyhow::ensure!(!name.trim().is_empty(), "--name must not be empty");
            let scope = match scope {
                TokenScope::Agent => Scope::Agent,
                TokenScope::Admin => Scope::Admin,
            };
            let token = generate_token();
            let entry = serde_json::json!({
                "name": name, "scope": scope.as_str(), "sha256": token_sha256(&token)
            });
            if json {
                let mut out = entry.clone();
                out["token"] = token.into();
                writeln!(Stdout, "{out}")?;
            } else {
                writeln!(
                    Stdout,
                    "New {scope} token for {name}; it is shown only now:\n\n  {token}\n\n\
                     Configure its SHA-256 (the token itself is stored nowhere):\n\n\
                     switchboard.toml:\n  [[server.tokens]]\n  name = {name:?}\n  scope = \"{scope}\"\n  sha256 = \"{hash}\"\n\n\
                     AWS (the channel secret), in \"server\": {{\"tokens\": [...]}}:\n  {entry}",
                    scope = scope.as_str(),
                    hash = entry["sha256"].as_str().unwrap_or_default(),
                )?;
            }
        }
        Command::Token(TokenCommand::List { json }) => {
            let listed = switchboard_local::tokens::configured(&config)?;
            if json || !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                for token in &listed {
                    writeln!(Stdout, "{}", serde_json::to_string(token)?)?;
                }
            } else {
                write!(Stdout, "{}", switchboard_local::tokens::table(&listed))?;
            }
        }
        Command::Customer(command) => customer(&config, command).await?,
        Command::Bench(BenchCommand::Pipeline(args)) => {
            writeln!(Stdout, "{}", bench::pipeline::run(&args).await?)?;
        }
        Command::Bench(BenchCommand::Peer(_)) => {
            anyhow::bail!("bench peer runs before the runtime")
        }
        Command::Queue(QueueCommand::Stats) => {
            let stats = open_store(&config)?.stats().await?;
            writeln!(Stdout, "{}", serde_json::to_string_pretty(&stats)?)?;
        }
        Command::Queue(QueueCommand::DeadLetters { queue, limit, json }) => {
            let queue = queue.as_deref().map(queue_named).transpose()?;
            let store = open_store(&config)?;
            let listed = store.dead_letters(queue, limit as usize).await?;
            if json || !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                for dead in &listed {
                    writeln!(Stdout, "{}", serde_json::to_string(dead)?)?;
                }
            } else {
                let total: u64 = store
                    .stats()
                    .await?
                    .iter()
                    .filter(|s| queue.is_none_or(|q| q.as_str() == s.queue))
                    .map(|s| s.dead)
                    .sum();
                write!(
                    Stdout,
                    "{}",
                    switchboard_local::queues::dead_letter_table(&listed, total)
                )?;
            }
        }
        Command::Queue(QueueCommand::Redrive { queue }) => {
            let name = queue_named(&queue)?;
            let moved = open_store(&config)?
                .redrive(name, SystemClock.now_ms())
                .await?;
            writeln!(Stdout, "{moved} item(s) back in {queue}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn customer(config: &Config, command: CustomerCommand) -> anyhow::Result<()> {
    use switchboard_pipeline::privacy::CustomerPrivacy;
    let args = match &command {
        CustomerCommand::Export(args) | CustomerCommand::Erase(args) => args,
    };
    // A bad name is an error before anything is opened or created.
    args.customer
        .parse::<switchboard_domain::privacy::CustomerRef>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let data: Arc<dyn switchboard_domain::privacy::CustomerData> = if args.aws {
        aws_customer_data(config).await?
    } else {
        let local = switchboard_app::local::Local::open(config.clone()).await?;
        local
            .app
            .ports
            .customer_data
            .clone()
            .context("the local flavour has customer data")?
    };
    let privacy = CustomerPrivacy::new(data, config.routing.vip_customers.clone());
    let output = match command {
        CustomerCommand::Export(args) => {
            serde_json::to_string_pretty(&privacy.export(&args.customer).await?)?
        }
        CustomerCommand::Erase(args) => {
            serde_json::to_string_pretty(&privacy.erase(&args.customer, "cli").await?)?
        }
    };
    writeln!(Stdout, "{output}")?;
    Ok(())
}

#[cfg(feature = "aws")]
async fn aws_customer_data(
    config: &Config,
) -> anyhow::Result<Arc<dyn switchboard_domain::privacy::CustomerData>> {
    let aws = config.aws.as_ref().context(
        "--aws needs the stack's table names: set the SWITCHBOARD_AWS__* variables or [aws]",
    )?;
    let clients = switchboard_aws::Clients::new(&switchboard_aws::aws_config().await);
    Ok(Arc::new(switchboard_aws::DynamoCustomerData::new(
        clients.dynamodb,
        &switchboard_app::aws::resources(aws),
    )))
}

#[cfg(not(feature = "aws"))]
async fn aws_customer_data(
    _config: &Config,
) -> anyhow::Result<Arc<dyn switchboard_domain::privacy::CustomerData>> {
    anyhow::bail!("this build has no AWS support: build it with `--features aws`")
}

/// The knowledge base after an import: the imported one, or with `merge` the
/// old one with the imported entries replacing or joining it by id.
fn combine(old: &KnowledgeBase, imported: KnowledgeBase, merge: bool) -> KnowledgeBase {
    if !merge {
        return imported;
    }
    let mut merged = old.clone();
    merged.merge(imported);
    merged
}

/// Where reports read from (the local database, or with `aws` the stack's
/// tables), and the knowledge base's questions by entry id.
async fn insight_sources(
    config: &Config,
    aws: bool,
) -> anyhow::Result<(
    Arc<dyn switchboard_domain::ReportRecords>,
    std::collections::HashMap<String, String>,
)> {
    let labels = |kb: &KnowledgeBase| {
        kb.entries
            .iter()
            .map(|e| (e.id.clone(), e.question.clone()))
            .collect()
    };
    if aws {
        return aws_insight_sources(config, labels).await;
    }
    let store = open_store(config)?;
    let knowledge_base = load_knowledge_base(config, &store).await?;
    Ok((Arc::new(store), labels(&knowledge_base)))
}

#[cfg(feature = "aws")]
async fn aws_insight_sources(
    config: &Config,
    labels: impl Fn(&KnowledgeBase) -> std::collections::HashMap<String, String>,
) -> anyhow::Result<(
    Arc<dyn switchboard_domain::ReportRecords>,
    std::collections::HashMap<String, String>,
)> {
    let aws = config.aws.as_ref().context(
        "--aws needs the stack's table names: set the SWITCHBOARD_AWS__* variables or [aws]",
    )?;
    let clients = switchboard_aws::Clients::new(&switchboard_aws::aws_config().await);
    let kb =
        switchboard_aws::DynamoKnowledgeBase::new(clients.dynamodb.clone(), aws.kb_table.clone());
    let knowledge_base = match kb
        .load_jsonl()
        .await
        .with_context(|| format!("reading the DynamoDB table {}", aws.kb_table))?
    {
        Some(jsonl) => {
            KnowledgeBase::from_jsonl(&jsonl).context("reading the knowledge base in the table")?
        }
        None => KnowledgeBase::default(),
    };
    let records = switchboard_aws::DynamoReportRecords::new(
        clients.dynamodb,
        aws.sessions_table.clone(),
        aws.feedback_table.clone(),
    );
    Ok((Arc::new(records), labels(&knowledge_base)))
}

#[cfg(not(feature = "aws"))]
async fn aws_insight_sources(
    _config: &Config,
    _labels: impl Fn(&KnowledgeBase) -> std::collections::HashMap<String, String>,
) -> anyhow::Result<(
    Arc<dyn switchboard_domain::ReportRecords>,
    std::collections::HashMap<String, String>,
)> {
    anyhow::bail!("this build has no AWS support: build it with `--features aws`")
}

fn open_store(config: &Config) -> anyhow::Result<SqliteStore> {
    SqliteStore::open(&config.database_path())
        .with_context(|| format!("opening the database {}", config.database_path().display()))
}

async fn kb(config: &Config, command: KbCommand) -> anyhow::Result<()> {
    match command {
        #[cfg(feature = "aws")]
        KbCommand::Import {
            file,
            merge,
            dynamodb_table: Some(table),
        } => {
            let imported = KnowledgeBase::load_answerable(&file)
                .with_context(|| format!("loading {}", file.display()))?;
            let clients = switchboard_aws::Clients::new(&switchboard_aws::aws_config().await);
            let store = switchboard_aws::DynamoKnowledgeBase::new(clients.dynamodb, table.clone());
            let old = match store
                .load_jsonl()
                .await
                .with_context(|| format!("reading the DynamoDB table {table}"))?
            {
                Some(jsonl) => KnowledgeBase::from_jsonl(&jsonl)
                    .context("reading the knowledge base in the table")?,
                None => KnowledgeBase::default(),
            };
            let knowledge_base = combine(&old, imported, merge);
            let entries: Vec<String> = knowledge_base
                .to_jsonl()
                .lines()
                .map(str::to_owned)
                .collect();
            let generation = store
                .put_raw_entries(&entries, SystemClock.now_ms())
                .await
                .with_context(|| format!("writing to the DynamoDB table {table}"))?;
            writeln!(
                Stdout,
                "{} {} entries into {table} (generation {generation}): {}",
                if merge { "merged" } else { "imported" },
                entries.len(),
                switchboard_faq::KbChanges::between(&old, &knowledge_base)
            )?;
        }
        KbCommand::Import { file, merge, .. } => {
            let imported = KnowledgeBase::load_answerable(&file)
                .with_context(|| format!("loading {}", file.display()))?;
            let store = open_store(config)?;
            // What the bot answers from now: the last import, else the sample.
            let old = match store.load_knowledge_base().await? {
                Some(jsonl) => KnowledgeBase::from_jsonl(&jsonl)
                    .context("reading the imported knowledge base")?,
                None => switchboard_faq::sample_kb(),
            };
            let knowledge_base = combine(&old, imported, merge);
            store
                .save_knowledge_base(knowledge_base.to_jsonl(), SystemClock.now_ms())
                .await?;
            writeln!(
                Stdout,
                "{} the knowledge base: {} entries now; {}",
                if merge { "merged into" } else { "replaced" },
                knowledge_base.len(),
                switchboard_faq::KbChanges::between(&old, &knowledge_base)
            )?;
            match &config.knowledge_base {
                Some(path) => writeln!(
                    Stdout,
                    "note: the configuration's knowledge_base ({}) is what `serve` answers from; remove it to use imports",
                    path.display()
                )?,
                None => writeln!(
                    Stdout,
                    "a running `switchboard serve` answers from it within seconds"
                )?,
            }
        }
        KbCommand::Export => write!(
            Stdout,
            "{}",
            load_knowledge_base(config, &open_store(config)?)
                .await?
                .to_jsonl()
        )?,
        KbCommand::Gaps {
            limit,
            days,
            json,
            aws,
        } => {
            use switchboard_pipeline::report::{self, Unanswered};
            let (records, _) = insight_sources(config, aws).await?;
            let records = report::read(
                records.as_ref(),
                report::Window::last_days(days, SystemClock.now_ms()),
            )
            .await?;
            let gaps = report::gaps(
                report::unanswered_turns(&records.sessions, records.from_ms, records.to_ms),
                limit,
            );
            let terminal = !json && std::io::IsTerminal::is_terminal(&std::io::stdout());
            for (outcome, heading) in [
                (Unanswered::NotAnswered, "Not answered (handed to a person)"),
                (
                    Unanswered::OfferedPerson,
                    "Answered unsure, with the offer of a person",
                ),
            ] {
                let listed: Vec<_> = gaps.iter().filter(|g| g.outcome == outcome).collect();
                if terminal {
                    writeln!(Stdout, "{heading}: {}", listed.len())?;
                    for gap in &listed {
                        writeln!(
                            Stdout,
                            "  {:>5}  {}  (last {})",
                            gap.count, gap.question, gap.last_seen
                        )?;
                    }
                    writeln!(Stdout)?;
                } else {
                    for gap in listed {
                        writeln!(Stdout, "{}", serde_json::to_string(gap)?)?;
                    }
                }
            }
        }
        KbCommand::Suggest {
            days,
            limit,
            export,
            aws,
        } => {
            use switchboard_pipeline::{report, suggest};
            let (records, labels) = insight_sources(config, aws).await?;
            let records = report::read(
                records.as_ref(),
                report::Window::last_days(days, SystemClock.now_ms()),
            )
            .await?;
            let mut found = suggest::suggest(
                &records.sessions,
                &records.feedback,
                records.from_ms,
                records.to_ms,
                &labels,
            );
            found.entries.truncate(limit);
            match export {
                Some(path) => {
                    std::fs::write(&path, suggest::to_jsonl(&found.entries))
                        .with_context(|| format!("writing {}", path.display()))?;
                    let unanswered = found
                        .entries
                        .iter()
                        .filter(|s| s.agent_answer.is_none())
                        .count();
                    eprintln!(
                        "{} proposed entries written to {} ({unanswered} without an answer yet: write one, then `switchboard kb import --merge {}`)",
                        found.entries.len(),
                        path.display(),
                        path.display()
                    );
                }
                None => writeln!(Stdout, "{}", serde_json::to_string_pretty(&found)?)?,
            }
        }
    }
    Ok(())
}
