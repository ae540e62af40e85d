//! A real browser for page tests: Debian's headless Chromium driven through chromedriver's
//! WebDriver protocol (JSON over HTTP, spoken here with a few plain requests). The test
//! command installs `chromium` and `chromium-driver`; a missing one fails the test with the
//! package to install.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::rig::http_request;
use crate::{Running, free_port, wait_for};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One browser session, closed when dropped.
#[derive(Debug)]
pub struct Browser {
    driver: Running,
    port: u16,
    session: String,
}

impl Browser {
    /// A headless Chromium with a phone-sized window (412 × 915, a common Android size).
    pub fn phone() -> Browser {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: install Debian's {package} package (scripts/test does)"
            );
        }
        let port = free_port();
        let mut driver =
            Running::start_program(Path::new(CHROMEDRIVER), &[&format!("--port={port}")]);
        wait_for("chromedriver", Duration::from_secs(20), || {
            driver.assert_running();
            http_request(port, "GET", "/status", None)
                .is_ok_and(|(code, body)| code == 200 && body.contains("\"ready\":true"))
        });
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
        };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=412,915"]
            }
        }}});
        let value = browser.call("POST", "/session", Some(caps));
        browser.session = value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {value}"))
            .to_owned();
        browser
    }

    fn call(&mut self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string());
        let (code, text) = http_request(self.port, method, path, body.as_deref())
            .unwrap_or_else(|e| panic!("chromedriver {method} {path}: {e}\n{}", self.driver.log()));
        let reply: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("chromedriver {method} {path}: {e}: {text}"));
        assert!(
            code == 200,
            "chromedriver {method} {path} answered {code}: {reply}"
        );
        reply["value"].clone()
    }

    fn at(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub fn goto(&mut self, url: &str) {
        let path = self.at("/url");
        self.call("POST", &path, Some(json!({ "url": url })));
    }

    /// The current page's HTML.
    pub fn source(&mut self) -> String {
        let path = self.at("/source");
        self.call("GET", &path, None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits (up to 15 s) until the page's HTML contains `text`, as after a click that
    /// submits a form; the HTML.
    pub fn wait_for_text(&mut self, text: &str) -> String {
        let start = std::time::Instant::now();
        loop {
            let page = self.source();
            if page.contains(text) {
                return page;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "the page never showed {text:?}:\n{page}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn element(&mut self, css: &str) -> String {
        let path = self.at("/element");
        let v = self.call(
            "POST",
            &path,
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    /// Clicks the element `css` selects (a submit button submits its form and the browser
    /// follows the redirect before this returns).
    pub fn click(&mut self, css: &str) {
        let id = self.element(css);
        let path = self.at(&format!("/element/{id}/click"));
        self.call("POST", &path, Some(json!({})));
    }

    pub fn type_into(&mut self, css: &str, text: &str) {
        let id = self.element(css);
        let path = self.at(&format!("/element/{id}/value"));
        self.call("POST", &path, Some(json!({ "text": text })));
    }

    /// Saves a PNG of the window to `file`.
    pub fn screenshot(&mut self, file: &Path) {
        let path = self.at("/screenshot");
        let data = self.call("GET", &path, None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
            .expect("a base64 screenshot");
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).expect("the screenshot's directory");
        }
        std::fs::write(file, png).expect("write the screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = http_request(
                self.port,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
            );
        }
    }
}

/// Where a test keeps what it made for people to look at (screenshots): `target/artifacts/`.
pub fn artifacts_dir() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test> -> target/artifacts
    exe.ancestors()
        .nth(3)
        .expect("a target directory")
        .join("artifacts")
}
