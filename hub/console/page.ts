/**
 * The console's one HTML page and its stylesheet. The page is a shell: a
 * sign-in form, the navigation, and the <main> the browser modules fill. No
 * inline script or style (the Content-Security-Policy forbids both), so the
 * page holds markup only.
 */

export function consolePage(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fleetcast console</title>
<link rel="stylesheet" href="/console/console.css">
<link rel="icon" href="/console/icon.svg" type="image/svg+xml">
<script type="module" src="/console/app.js"></script>
</head>
<body>
<header>
  <a class="brand" href="#/fleet">fleetcast</a>
  <nav id="nav" aria-label="Pages" hidden>
    <a href="#/fleet">Fleet</a>
    <a href="#/rollouts">Rollouts</a>
    <a href="#/drift">Drift</a>
    <a href="#/bundles">Bundles</a>
    <a href="#/audit">Audit</a>
  </nav>
  <span id="who" aria-live="polite"></span>
  <button id="sign-out" type="button" hidden>Sign out</button>
</header>
<form id="sign-in" hidden>
  <h1>Sign in</h1>
  <p>Paste an API token (<code>fleetcast token create --role operator</code>, or the hub's first admin token in its data folder, <code>admin.token</code>). It is kept in this tab only (sessionStorage) and sent to this hub only.</p>
  <label for="token">API token</label>
  <input id="token" name="token" type="password" autocomplete="off" required>
  <button type="submit">Sign in</button>
  <p id="sign-in-error" role="alert"></p>
</form>
<main id="main" tabindex="-1"></main>
<p id="status" role="status" aria-live="polite"></p>
<dialog id="confirm" aria-labelledby="confirm-title">
  <form method="dialog">
    <h2 id="confirm-title">Confirm</h2>
    <p id="confirm-text"></p>
    <label for="confirm-reason">Reason (recorded with the decision)</label>
    <input id="confirm-reason" name="reason" maxlength="1024">
    <div class="buttons">
      <button value="cancel" type="submit">Cancel</button>
      <button value="ok" type="submit" id="confirm-ok">Confirm</button>
    </div>
  </form>
</dialog>
<noscript><p>The console needs JavaScript. Everything it shows is also in the API (GET /openapi.json) and the fleetcast CLI.</p></noscript>
</body>
</html>
`;
}

/** The tab icon: named in the page, so the browser does not ask for /favicon.ico (a route that needs a token). */
export const CONSOLE_ICON = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="#0a58ca"/><path d="M4 8h8M8 4v8" stroke="#fff" stroke-width="2"/></svg>';

export const CONSOLE_CSS = `:root { --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --bg: #fff; --panel: #f6f8fa; --accent: #0a58ca; --bad: #b42318; --ok: #1a7f37; --warn: #9a6700; font-family: system-ui, sans-serif; color: var(--fg); background: var(--bg); }
body { margin: 0; }
[hidden] { display: none !important; }
header { display: flex; gap: 1.5rem; align-items: center; padding: .6rem 1.2rem; border-bottom: 1px solid var(--line); background: var(--panel); }
header .brand { font-weight: 700; color: var(--fg); text-decoration: none; }
nav { display: flex; gap: 1rem; }
nav a { color: var(--accent); text-decoration: none; padding: .2rem .4rem; border-radius: 4px; }
nav a[aria-current="page"] { background: var(--accent); color: #fff; }
#who { margin-left: auto; color: var(--muted); }
main, #sign-in { padding: 1rem 1.2rem; max-width: 80rem; }
#sign-in input { width: 30rem; max-width: 100%; display: block; margin: .3rem 0 .8rem; }
a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible, [tabindex]:focus-visible { outline: 3px solid #ff9800; outline-offset: 2px; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { border-bottom: 1px solid var(--line); padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: var(--panel); font-weight: 600; }
tbody th[scope="row"] { background: none; font-weight: 500; color: var(--muted); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.cards { display: flex; flex-wrap: wrap; gap: 1rem; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: .5rem .8rem; background: var(--panel); min-width: 12rem; }
.card h3 { margin: 0 0 .3rem; font-size: .95rem; }
.filters { display: flex; flex-wrap: wrap; gap: .8rem; align-items: end; margin: .5rem 0; }
.filters label { display: flex; flex-direction: column; font-size: .85rem; color: var(--muted); }
.pass, .ok { color: var(--ok); } .fail, .drift, .bad { color: var(--bad); } .wait, .insufficient { color: var(--warn); }
.actions { display: flex; gap: .6rem; margin: .6rem 0; }
button { font: inherit; padding: .3rem .8rem; border: 1px solid var(--line); border-radius: 4px; background: #fff; cursor: pointer; }
button.danger { border-color: var(--bad); color: var(--bad); }
.muted { color: var(--muted); }
.error { color: var(--bad); }
#status { margin: 0; padding: .2rem 1.2rem; font-size: .8rem; color: var(--muted); border-top: 1px solid var(--line); }
dialog { border: 1px solid var(--line); border-radius: 6px; max-width: 32rem; }
dialog .buttons { display: flex; gap: .6rem; justify-content: flex-end; margin-top: 1rem; }
dialog input { width: 100%; }
svg text { font-size: 11px; fill: var(--fg); }
.heat td.cell { text-align: center; min-width: 4rem; }
.heat td.cell button { width: 100%; border: 0; background: transparent; }
.heat small { color: var(--muted); }
#entry-table code { word-break: break-all; }
.swatch { display: inline-block; width: .9rem; height: .9rem; vertical-align: middle; margin-left: .6rem; }
.swatch.ref { background: #8aa4c8; } .swatch.cur { background: #d9534f; }
ol.timeline li { margin-bottom: .4rem; }
code, .mono { font-family: ui-monospace, monospace; font-size: .85rem; }
.bar { height: .6rem; background: var(--line); border-radius: 3px; min-width: 8rem; }
`;
