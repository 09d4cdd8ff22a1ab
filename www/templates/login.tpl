% rebase('layout.tpl')
<form id="login-form" class="login cbi-section" method="post" action="/api/login">
  <h2 name="content">Authorization Required</h2>
  <div class="cbi-map-descr">
  % if auth == 'rpcd':
  Please enter your username and password (the router's own account, as for LuCI).
  % else:
  Please enter the password of this page.
  % end
  </div>
  <div class="alert-message error" id="login-error"{{!'' if error else ' hidden'}}>{{error}}</div>
  <input type="hidden" name="next" value="{{next}}">
  % if auth == 'rpcd':
  <div class="cbi-value"><label class="cbi-value-title" for="username">Username</label>
    <div class="cbi-value-field"><input type="text" class="cbi-input-text" id="username" name="username" value="root" autocomplete="username"></div></div>
  % end
  <div class="cbi-value"><label class="cbi-value-title" for="password">Password</label>
    <div class="cbi-value-field"><input type="password" class="cbi-input-text" id="password" name="password" autocomplete="current-password" autofocus></div></div>
  <div class="cbi-page-actions">
    <button type="submit" class="cbi-button cbi-button-apply">Log in</button>
  </div>
</form>
