<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{{csrf}}">
<title>{{hostname}} - {{title}} - Printers</title>
<link rel="stylesheet" href="/static/style.css">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<script src="/static/app.js" defer></script>
</head>
<body data-page="{{page}}">
<header>
  <a class="brand" href="/">{{hostname}}</a>
  % if session is not None:
  <ul class="nav">
    % for target, label, name in (('/', 'Status', 'status'), ('/firmware', 'Firmware', 'firmware'), ('/settings', 'Settings', 'settings'), ('/log', 'Log', 'log')):
    <li{{!' class="active"' if page == name else ''}}><a href="{{target}}">{{label}}</a></li>
    % end
  </ul>
  % if auth != 'none':
  <div class="session"><span class="user">{{session.user}}</span>
    <button type="button" id="logout" class="cbi-button">Log out</button></div>
  % end
  % end
</header>
<div id="maincontent" class="container">
<div id="notice" class="alert-message" hidden></div>
{{!base}}
</div>
<footer>Powered by usbprintd {{version}}</footer>
</body>
</html>
