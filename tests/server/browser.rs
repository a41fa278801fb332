//! End-to-end test of the web client: two headless Chromium sessions, driven through
//! chromedriver (WebDriver) with fantoccini, use the page Parlor serves at `/` against a real
//! server. They register, become friends through a request and its acceptance, chat both
//! ways, one leaves while the other writes and catches up when it comes back, and a revoked
//! message turns into the placeholder on both sides; the page speaks the server's locale
//! (zh-CN by default), the language of the group notices the server writes. Each step leaves a PNG screenshot in
//! `$CARGO_TARGET_TMPDIR/browser/` (the path is printed).
//!
//! Needs `chromium` and `chromedriver` on the PATH (Debian: `apt-get install -y chromium
//! chromium-driver`); without them the test fails and says so.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TestServer;
use fantoccini::elements::Element;
use fantoccini::error::{CmdError, ErrorStatus};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// How long one UI condition may take before the test fails.
const UI_TIMEOUT: Duration = Duration::from_secs(20);
/// Bob's conversation with Alice in his list.
const BOB_WITH_ALICE: &str = "[data-testid=conversation][data-title=alice_web]";
/// How often a condition is checked while waiting.
const POLL: Duration = Duration::from_millis(50);

/// The first of `names` found on the PATH.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// A chromedriver child process on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start(binary: &Path) -> Driver {
        let mut child = Command::new(binary)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        // "ChromeDriver was started successfully on port 38465."
        let port = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromedriver exited before it said which port it listens on");
            };
            if let Some(rest) = line
                .split("on port ")
                .nth(1)
                .filter(|_| line.contains("successfully"))
            {
                break rest
                    .trim_end_matches('.')
                    .trim()
                    .parse::<u16>()
                    .expect("a port number");
            }
        };
        // Keep reading its output so that it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session: its own Chromium with a fresh profile, one tab on the web client.
struct Browser {
    name: &'static str,
    client: Client,
    shots: PathBuf,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn open(name: &'static str, driver: &Driver, chromium: &Path, shots: &Path) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1100,720",
            "--lang=en-US",
        ]
        .map(String::from)
        .into_iter()
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .unwrap_or_else(|e| panic!("{name}: chromedriver cannot start Chromium: {e}"));
        Browser {
            name,
            client,
            shots: shots.to_path_buf(),
            _profile: profile,
        }
    }

    async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("{}: cannot open {url}: {e}", self.name));
    }

    /// Saves a screenshot as `<step>.png`.
    async fn shot(&self, step: &str) {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("{}: screenshot {step}: {e}", self.name));
        let path = self.shots.join(format!("{step}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// Waits until `locator` finds an element; on a timeout saves a screenshot and fails
    /// naming what was awaited.
    async fn wait(&self, what: &str, locator: Locator<'_>) -> Element {
        match self
            .client
            .wait()
            .at_most(UI_TIMEOUT)
            .every(POLL)
            .for_element(locator)
            .await
        {
            Ok(e) => e,
            Err(e) => {
                let step = format!("failed-{}", self.name);
                self.shot(&step).await;
                let source = self.client.source().await.unwrap_or_default();
                panic!(
                    "{}: waited {UI_TIMEOUT:?} for {what}: {e}\nscreenshot: {}\npage: {source}",
                    self.name,
                    self.shots.join(format!("{step}.png")).display()
                );
            }
        }
    }

    async fn css(&self, what: &str, selector: &str) -> Element {
        self.wait(what, Locator::Css(selector)).await
    }

    /// Clicks the element `selector` finds, finding it again if the page replaced it.
    async fn click(&self, what: &str, selector: &str) {
        let deadline = Instant::now() + UI_TIMEOUT;
        loop {
            let e = self.css(what, selector).await;
            match e.click().await {
                Ok(()) => return,
                Err(CmdError::Standard(w))
                    if w.error == ErrorStatus::StaleElementReference && Instant::now() < deadline => {}
                Err(err) => panic!("{}: clicking {what}: {err}", self.name),
            }
        }
    }

    async fn type_into(&self, what: &str, selector: &str, text: &str) {
        let e = self.css(what, selector).await;
        e.send_keys(text)
            .await
            .unwrap_or_else(|err| panic!("{}: typing into {what}: {err}", self.name));
    }

    /// Registers `username` on the log-in screen and waits until the socket is online.
    async fn register(&self, base: &str, username: &str) {
        self.goto(base).await;
        self.type_into(
            "the username field",
            "#auth:not([hidden]) [data-testid=auth-username]",
            username,
        )
        .await;
        self.type_into("the password field", "[data-testid=auth-password]", "secret1")
            .await;
        self.click("the register button", "[data-testid=auth-register]")
            .await;
        self.online().await;
    }

    async fn online(&self) {
        self.css(
            "the chat screen, connected",
            "#main:not([hidden]) [data-testid=conn-status][data-state=online]",
        )
        .await;
    }

    /// Writes `text` in the composer and sends it (Enter, or the Send button).
    async fn say(&self, text: &str, with_enter: bool) {
        self.type_into("the composer", "[data-testid=composer-input]", text)
            .await;
        if with_enter {
            self.type_into(
                "the composer",
                "[data-testid=composer-input]",
                &char::from(fantoccini::key::Key::Enter).to_string(),
            )
            .await;
        } else {
            self.click("the send button", "[data-testid=send]").await;
        }
        self.wait(
            &format!("my message {text:?}, stored"),
            Locator::XPath(&message(
                text,
                Some("true"),
                "[@data-state='sent' or @data-state='read']",
            )),
        )
        .await;
    }

    /// Waits for the other side's message `text` in the open conversation.
    async fn sees(&self, text: &str) {
        self.wait(
            &format!("the message {text:?}"),
            Locator::XPath(&message(text, Some("false"), "")),
        )
        .await;
    }

    async fn close(self) {
        let name = self.name;
        self.client
            .close()
            .await
            .unwrap_or_else(|e| panic!("{name}: closing the session: {e}"));
    }
}

/// XPath of a message item with text `text`, mine or not, and `extra` predicates on the item.
fn message(text: &str, mine: Option<&str>, extra: &str) -> String {
    let mine = mine.map(|m| format!("[@data-mine='{m}']")).unwrap_or_default();
    format!(
        "//ol[@data-testid='messages']/li[@data-testid='message']{mine}{extra}\
         [.//span[@data-testid='message-text' and text()='{text}']]"
    )
}

/// Chromium and chromedriver from the PATH, and the directory for screenshots; fails the
/// test, saying how to install them, when they are missing.
fn tools() -> (PathBuf, PathBuf, PathBuf) {
    let chromium = on_path(&["chromium", "chromium-browser", "google-chrome"]).unwrap_or_else(|| {
        panic!(
            "the browser test needs Chromium, and none is on the PATH \
             (Debian: apt-get install -y chromium chromium-driver)"
        )
    });
    let chromedriver = on_path(&["chromedriver"]).unwrap_or_else(|| {
        panic!(
            "the browser test needs chromedriver, and it is not on the PATH \
             (Debian: apt-get install -y chromium-driver)"
        )
    });
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&shots).unwrap();
    println!("screenshots: {}", shots.display());
    (chromium, chromedriver, shots)
}

#[actix_web::test]
async fn two_browsers_befriend_chat_catch_up_and_revoke() {
    let (chromium, chromedriver, shots) = tools();

    let (server, _dir) = TestServer::start().await;
    let base = server.url("/");
    let driver = Driver::start(&chromedriver);
    let alice = Browser::open("alice", &driver, &chromium, &shots).await;
    let bob = Browser::open("bob", &driver, &chromium, &shots).await;

    // The page and its log-in screen.
    alice.goto(&base).await;
    alice
        .css(
            "the log-in screen",
            "#auth:not([hidden]) [data-testid=auth-register]",
        )
        .await;
    alice.shot("01-login").await;

    // The page speaks the server's locale, zh-CN by default.
    let login = alice.css("the log-in button", "[data-testid=auth-login]").await;
    assert_eq!(login.text().await.unwrap(), "登录");
    let lang = alice
        .client
        .execute("return document.documentElement.lang;", vec![])
        .await
        .unwrap();
    assert_eq!(lang, json!("zh-CN"));

    // Both register: two browsers, two users.
    alice.register(&base, "alice_web").await;
    bob.register(&base, "bob_web").await;
    alice.shot("02-alice-registered").await;

    // Alice finds Bob and asks to be friends.
    alice
        .click("the Contacts tab", "[data-testid=tab-contacts]")
        .await;
    alice
        .type_into("the search field", "[data-testid=search-input]", "bob_w")
        .await;
    alice
        .click("the search button", "[data-testid=search-button]")
        .await;
    alice
        .click(
            "Bob's Add friend button",
            "[data-testid=search-result][data-username=bob_web] [data-testid=add-friend]",
        )
        .await;
    alice
        .wait(
            "the request confirmation",
            Locator::XPath("//*[@data-testid='toast' and contains(., '已向bob_web发送好友申请')]"),
        )
        .await;
    alice.shot("03-alice-sent-request").await;

    // Bob gets the request pushed, and accepts it.
    bob.click("the Contacts tab", "[data-testid=tab-contacts]").await;
    bob.css(
        "the badge of one request",
        "[data-testid=requests-badge]:not([hidden])",
    )
    .await;
    bob.css(
        "Alice's request",
        "[data-testid=request][data-username=alice_web] [data-testid=accept-request]",
    )
    .await;
    bob.shot("04-bob-request").await;
    bob.click(
        "Accept on Alice's request",
        "[data-testid=request][data-username=alice_web] [data-testid=accept-request]",
    )
    .await;
    bob.css(
        "Alice among the friends",
        "[data-testid=friend][data-username=alice_web]",
    )
    .await;
    bob.shot("05-bob-friends").await;

    // Alice learns of it (the agreeFriend notice) and writes first.
    alice
        .click(
            "Bob among the friends",
            "[data-testid=friend][data-username=bob_web]",
        )
        .await;
    alice
        .css("the chat with Bob", "[data-testid=chat-title]:not(:empty)")
        .await;
    alice.say("Hello Bob", true).await;
    alice.shot("06-alice-first-message").await;

    // Bob sees one unread message, opens the conversation and answers.
    bob.click("the Chats tab", "[data-testid=tab-chats]").await;
    bob.css(
        "the conversation with Alice, one unread",
        &format!("{BOB_WITH_ALICE}[data-unread='1']"),
    )
    .await;
    bob.shot("07-bob-unread").await;
    bob.click("the conversation with Alice", BOB_WITH_ALICE).await;
    bob.sees("Hello Bob").await;
    bob.css(
        "the conversation read",
        &format!("{BOB_WITH_ALICE}[data-unread='0']"),
    )
    .await;
    bob.say("Hi Alice", false).await;
    alice.sees("Hi Alice").await;
    // Bob has read Alice's message: her side says so.
    alice
        .wait(
            "the read mark on Hello Bob",
            Locator::XPath(&message("Hello Bob", Some("true"), "[@data-state='read']")),
        )
        .await;
    alice.shot("08-alice-chat").await;

    // Bob types: Alice sees him typing; his message, once sent, ends it.
    bob.type_into("the composer", "[data-testid=composer-input]", "Are you there")
        .await;
    let typing = alice
        .css("Bob typing", "[data-testid=chat-typing]:not([hidden])")
        .await;
    let text = typing.text().await.unwrap();
    assert!(text.contains("bob_web"), "{text}");
    alice.shot("08b-alice-sees-bob-typing").await;
    bob.type_into(
        "the composer",
        "[data-testid=composer-input]",
        &char::from(fantoccini::key::Key::Enter).to_string(),
    )
    .await;
    alice.sees("Are you there").await;
    alice
        .css("no one typing", "[data-testid=chat-typing][hidden]")
        .await;

    // Alice's socket fails under her next send frame (typing notes still go out): the
    // message goes over REST with the same cid, and the socket comes back by itself.
    alice
        .client
        .execute(
            "window.realSend = WebSocket.prototype.send;\
             WebSocket.prototype.send = function (d) {\
               if (JSON.parse(d).type === 'send') this.close(); else window.realSend.call(this, d);\
             };",
            vec![],
        )
        .await
        .unwrap();
    alice.say("Sent while the socket was down", false).await;
    bob.sees("Sent while the socket was down").await;
    alice
        .client
        .execute("WebSocket.prototype.send = window.realSend;", vec![])
        .await
        .unwrap();
    alice.online().await;
    alice.say("Socket back", false).await;
    bob.sees("Socket back").await;

    // Bob leaves (his page and its socket close); Alice writes twice meanwhile.
    bob.goto("about:blank").await;
    alice.say("Are you there", false).await;
    alice.say("Catch up on this", true).await;
    alice.shot("09-alice-while-bob-away").await;

    // Bob comes back in the same tab: the session is kept, the two messages wait for him.
    bob.goto(&base).await;
    bob.online().await;
    let waiting = bob
        .css(
            "the conversation with Alice, two unread",
            &format!("{BOB_WITH_ALICE}[data-unread='2']"),
        )
        .await;
    let preview = waiting.text().await.unwrap();
    assert!(
        preview.contains("Catch up on this"),
        "the preview shows the last message: {preview}"
    );
    bob.shot("10-bob-back-unread").await;
    bob.click("the conversation with Alice", BOB_WITH_ALICE).await;
    bob.sees("Are you there").await;
    bob.sees("Catch up on this").await;
    bob.shot("11-bob-caught-up").await;

    // Alice revokes her last message; both sides show the placeholder instead.
    // Once Bob's read receipt has redrawn the message, its button stays put.
    alice
        .wait(
            "the revoke button of Catch up on this, read",
            Locator::XPath(&format!(
                "{}//button[@data-testid='revoke']",
                message("Catch up on this", Some("true"), "[@data-state='read']")
            )),
        )
        .await
        .click()
        .await
        .unwrap();
    alice
        .css(
            "my revoked message",
            "[data-testid=message][data-mine=true][data-revoked=true]",
        )
        .await;
    alice.shot("12-alice-revoked").await;
    let placeholder = bob
        .css(
            "Alice's revoked message",
            "[data-testid=message][data-mine=false][data-revoked=true]",
        )
        .await;
    assert_eq!(placeholder.text().await.unwrap(), "alice_web撤回了一条消息");
    let gone = bob
        .client
        .find_all(Locator::XPath(&message("Catch up on this", None, "")))
        .await
        .unwrap();
    assert!(gone.is_empty(), "the revoked text is no longer shown");
    bob.sees("Are you there").await;
    bob.shot("13-bob-sees-revoke").await;

    // Alice makes a group with Bob: the page's texts and the server's notice agree in language.
    alice.click("the Groups tab", "[data-testid=tab-groups]").await;
    alice.click("Bob as a member", "[data-testid=group-member]").await;
    alice.click("Create group", "[data-testid=group-create]").await;
    alice
        .wait(
            "the group confirmation",
            Locator::XPath("//*[@data-testid='toast' and contains(., '群聊已创建')]"),
        )
        .await;
    alice.click("the new group", "[data-testid=group]").await;
    alice
        .wait(
            "the group-created notice",
            Locator::XPath(
                "//ol[@data-testid='messages']/li[@data-testid='message']\
                 /p[contains(., 'alice_web创建了群聊，并邀请bob_web加入')]",
            ),
        )
        .await;
    let send = alice.css("the send button", "[data-testid=send]").await;
    assert_eq!(send.text().await.unwrap(), "发送");
    alice.shot("14-alice-group-created").await;

    // On a narrow screen the open conversation takes the whole width, with a way back.
    bob.client.set_window_size(420, 800).await.unwrap();
    bob.css("the back button", "#back").await;
    bob.shot("15-bob-narrow-chat").await;
    bob.click("the back button", "#back").await;
    bob.css("the conversation list", BOB_WITH_ALICE).await;
    bob.shot("16-bob-narrow-list").await;

    // Bob logs out and back in: the log-in screen, then his conversation again.
    bob.click("Log out", "[data-testid=logout]").await;
    bob.type_into(
        "the username field",
        "#auth:not([hidden]) [data-testid=auth-username]",
        "bob_web",
    )
    .await;
    bob.type_into("the password field", "[data-testid=auth-password]", "secret1")
        .await;
    bob.click("the log-in button", "[data-testid=auth-login]").await;
    bob.online().await;
    bob.css("the conversation with Alice", BOB_WITH_ALICE).await;

    alice.close().await;
    bob.close().await;
    drop(driver);
    server.stop().await;
}

/// What a page on a second origin sees when it calls Parlor with `fetch`: it registers (a
/// JSON body, so a preflight), reads its friends with the `token` header (another
/// preflight) and reads an error's reason. Each step's status, or the error `fetch` threw.
const CROSS_ORIGIN_CALLS: &str = r#"
const [parlor, username, done] = arguments;
(async () => {
  const out = { origin: location.origin };
  try {
    const reg = await fetch(parlor + '/api/regChat', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username, password: 'secret123' }),
    });
    out.register = reg.status;
    const token = (await reg.json()).data.token;
    const friends = await fetch(parlor + '/api/chat/goodfriendlist', { headers: { token } });
    out.friends = friends.status;
    out.friendsMsg = (await friends.json()).msg;
    const refused = await fetch(parlor + '/api/chat/goodfriendlist');
    out.refused = refused.status;
    out.refusedMsg = (await refused.json()).msg;
  } catch (e) {
    out.error = String(e);
  }
  done(out);
})();
"#;

/// A web app served from another origin calls Parlor from headless Chromium: allowed by
/// `server.cors_origins`, its calls (with their preflights) go through and it reads the
/// answers, errors included; from a server that lists no origins the browser blocks them.
#[actix_web::test]
async fn a_page_on_another_origin_calls_parlor_when_its_origin_is_allowed() {
    let (chromium, chromedriver, shots) = tools();
    // The second origin: a page of its own on another port.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let app_origin = format!("http://{}", listener.local_addr().unwrap());
    let app = actix_web::HttpServer::new(|| {
        actix_web::App::new().route(
            "/",
            actix_web::web::get().to(|| async {
                actix_web::HttpResponse::Ok()
                    .content_type("text/html; charset=utf-8")
                    .body("<!doctype html><title>app</title><p>another origin</p>")
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    let app_handle = app.handle();
    actix_web::rt::spawn(app);

    let dir = tempfile::tempdir().unwrap();
    let origin = app_origin.clone();
    let allowing = TestServer::start_in(dir.path(), |c| c.server.cors_origins = vec![origin]).await;
    let (closed, _closed_dir) = TestServer::start().await;

    let driver = Driver::start(&chromedriver);
    let page = Browser::open("app", &driver, &chromium, &shots).await;
    page.goto(&format!("{app_origin}/")).await;
    page.shot("cors-01-app-page").await;

    let calls = |base: String, username: &str| {
        let args = vec![json!(base.trim_end_matches('/')), json!(username)];
        let client = page.client.clone();
        async move { client.execute_async(CROSS_ORIGIN_CALLS, args).await.unwrap() }
    };
    let seen = calls(allowing.url("/"), "xorigin_alice").await;
    assert_eq!(seen["origin"], app_origin, "{seen}");
    assert_ne!(seen["origin"].as_str().unwrap(), allowing.base, "{seen}");
    assert!(
        seen.get("error").is_none(),
        "the allowed origin's calls failed: {seen}"
    );
    assert_eq!(seen["register"], 200, "{seen}");
    assert_eq!(seen["friends"], 200, "{seen}");
    assert_eq!(seen["friendsMsg"], "ok", "{seen}");
    assert_eq!(seen["refused"], 401, "{seen}");
    assert_eq!(seen["refusedMsg"], "fail", "{seen}");

    // Same origin only: the browser refuses to hand over the first answer.
    let seen = calls(closed.url("/"), "xorigin_bob").await;
    let error = seen["error"]
        .as_str()
        .unwrap_or_else(|| panic!("a blocked call succeeded: {seen}"));
    assert!(error.contains("TypeError"), "{seen}");
    assert!(seen.get("register").is_none(), "{seen}");

    page.close().await;
    drop(driver);
    allowing.stop().await;
    closed.stop().await;
    app_handle.stop(true).await;
}
