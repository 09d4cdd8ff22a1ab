% rebase('layout.tpl')
<h2 name="content">Firmware</h2>
<div class="cbi-map-descr">Some HP LaserJets (1000, 1005, 1018, 1020, P1005–P1008, P1505) forget their firmware
whenever they are switched off and need it sent at every power-on. The files are HP's and are not included:
get them e.g. with foo2zjs's <code>getweb</code> script and upload them here. They are kept in the router's
configuration area and survive upgrades.</div>
<div class="cbi-section">
  <h3>Upload</h3>
  <form id="firmware-upload" novalidate>
    <div class="cbi-value">
      <label class="cbi-value-title" for="firmware-file">Firmware file</label>
      <div class="cbi-value-field">
        <input type="file" id="firmware-file" name="file">
        <button type="submit" class="cbi-button cbi-button-apply">Upload</button>
        <div class="cbi-value-error" data-error-for="file" hidden></div>
        <div class="cbi-value-description">At most {{max_bytes // 1048576}} MiB. A printer waiting for this
        file gets it at once.</div>
      </div>
    </div>
  </form>
</div>
<div class="cbi-section">
  <h3>Files on the router</h3>
  <table class="table" id="firmware-files">
    <thead><tr class="tr table-titles"><th class="th">File</th><th class="th">Size</th><th class="th">Uploaded</th><th class="th"></th></tr></thead>
    <tbody><tr class="tr placeholder"><td class="td" colspan="4"><em>Collecting data…</em></td></tr></tbody>
  </table>
</div>
<div class="cbi-section" id="models-section" hidden>
  <h3>Printers that need a firmware file</h3>
  <table class="table" id="firmware-models">
    <thead><tr class="tr table-titles"><th class="th">Model</th><th class="th">USB ID</th><th class="th">File</th><th class="th">On the router</th></tr></thead>
    <tbody></tbody>
  </table>
</div>
