% rebase('layout.tpl')
% s = settings
<h2 name="content" id="printer-title">{{printer['name']}}</h2>
<div class="cbi-map-descr">Settings of this printer (UCI section <code>{{printer['section']}}</code>).
"Save &amp; Apply" changes only this printer: jobs on other printers go on undisturbed.</div>
<div class="cbi-section" id="printer-status" data-section="{{printer['section']}}">
  <h3>Status</h3>
  <div class="cbi-value"><span class="cbi-value-title">State</span><div class="cbi-value-field" data-show="state">…</div></div>
  <div class="cbi-value"><span class="cbi-value-title">Model</span><div class="cbi-value-field" data-show="model">…</div></div>
  <div class="cbi-value"><span class="cbi-value-title">USB identity</span><div class="cbi-value-field" data-show="usb">…</div></div>
  <div class="cbi-value"><span class="cbi-value-title">Device</span><div class="cbi-value-field" data-show="device">…</div></div>
  <div class="cbi-value"><span class="cbi-value-title">Listening on</span><div class="cbi-value-field" data-show="listening">…</div></div>
  <div class="cbi-value"><span class="cbi-value-title">Current job</span><div class="cbi-value-field" data-show="job">…</div></div>
  <div class="cbi-value"><span class="cbi-value-title">Jobs</span><div class="cbi-value-field" data-show="counts">…</div></div>
</div>
<form id="printer-form" class="cbi-section" data-section="{{printer['section']}}" novalidate>
  <h3>Settings</h3>
  % include('field.tpl', kind='checkbox', name='enabled', label='Enable', value=s['enabled'], description='Serve this printer on its port while it is plugged in. When off, the port stays closed.')
  % include('field.tpl', kind='text', name='name', label='Name', value=s['name'], description='Shown on this page and announced over mDNS.')
  % include('field.tpl', kind='text', name='port', label='Port', value=s['port'], description='TCP port of the raw print server (9100, 9101, …; 0-9 mean 9100-9109).')
  % include('field.tpl', kind='text', name='bind', label='Listen address', value=s['bind'], placeholder='all addresses', description='Empty: every IPv4 and IPv6 address of the router. Or one address, e.g. the LAN address.')
  % include('field.tpl', kind='checkbox', name='bidirectional', label='Bidirectional', value=s['bidirectional'], description='Relay status messages from the printer back to the computer. Turn off if the printer hangs.')
  % include('field.tpl', kind='text', name='firmware', label='Firmware file', value=s['firmware'], datalist='firmware-files', placeholder='none', description='Blob uploaded to the printer when it is switched on (HP LaserJet 1000/1005/1018/1020/P100x/P1505). Upload it on the Firmware page.')
  % include('field.tpl', kind='checkbox', name='mdns', label='Announce (mDNS)', value=s['mdns'], description='Let computers and phones find this printer on the network.')
  <datalist id="firmware-files">
  % for name in firmware_files:
    <option value="{{name}}"></option>
  % end
  </datalist>
  <div class="cbi-page-actions">
    <button type="submit" class="cbi-button cbi-button-apply">Save &amp; Apply</button>
    <button type="reset" class="cbi-button cbi-button-reset">Reset</button>
  </div>
</form>
<div class="cbi-section" id="forget-section"{{!'' if not printer['present'] else ' hidden'}}>
  <h3>Remove</h3>
  <p>This printer is not plugged in. Forgetting it removes its settings and frees port {{s['port']}};
  if it is plugged in again it is set up as a new printer.</p>
  <button type="button" id="forget" class="cbi-button cbi-button-remove">Forget this printer</button>
</div>
<div class="cbi-section">
  <h3>Job history</h3>
  <table class="table" id="history">
    <thead>
      <tr class="tr table-titles">
        <th class="th">Job</th><th class="th">Client</th><th class="th">Started</th><th class="th">Duration</th>
        <th class="th">Sent</th><th class="th">Back-channel</th><th class="th">Result</th>
      </tr>
    </thead>
    <tbody><tr class="tr placeholder"><td class="td" colspan="7"><em>Collecting data…</em></td></tr></tbody>
  </table>
</div>
