% rebase('layout.tpl')
<h2 name="content">Printers</h2>
<div class="cbi-map-descr">USB printers of this router, each on its own raw print port (AppSocket/JetDirect).
Point a computer at <code>socket://{{hostname}}:<em>port</em></code> (or "HP JetDirect", "Raw TCP/IP port 9100").</div>
<div class="cbi-section">
  <h3>Printers</h3>
  <table class="table" id="printers">
    <thead>
      <tr class="tr table-titles">
        <th class="th">Printer</th><th class="th">USB</th><th class="th">Port</th><th class="th">State</th>
        <th class="th">Current job</th><th class="th">Queue</th><th class="th">Jobs</th><th class="th"></th>
      </tr>
    </thead>
    <tbody><tr class="tr placeholder"><td class="td" colspan="8"><em>Collecting data…</em></td></tr></tbody>
  </table>
</div>
<div class="cbi-section" id="unserved-section" hidden>
  <h3>USB printers not served</h3>
  <div class="cbi-section-descr">Plugged into the router, but without a print port: the reason says why.</div>
  <table class="table" id="unserved">
    <thead>
      <tr class="tr table-titles">
        <th class="th">Printer</th><th class="th">USB</th><th class="th">Why it is not served</th>
      </tr>
    </thead>
    <tbody></tbody>
  </table>
</div>
<div class="cbi-section">
  <h3>Recent jobs</h3>
  <table class="table" id="history">
    <thead>
      <tr class="tr table-titles">
        <th class="th">Printer</th><th class="th">Job</th><th class="th">Client</th><th class="th">Started</th>
        <th class="th">Duration</th><th class="th">Sent</th><th class="th">Back-channel</th><th class="th">Result</th>
      </tr>
    </thead>
    <tbody><tr class="tr placeholder"><td class="td" colspan="8"><em>Collecting data…</em></td></tr></tbody>
  </table>
</div>
<div class="cbi-section" id="issues-section" hidden>
  <h3>Configuration problems</h3>
  <ul id="issues"></ul>
</div>
