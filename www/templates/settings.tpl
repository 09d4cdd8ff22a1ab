% rebase('layout.tpl')
<h2 name="content">Settings</h2>
<div class="cbi-map-descr">Settings for all printers. Changes are saved to <code>/etc/config/usbprintd</code> and
applied at once.</div>
<form id="settings-form" class="cbi-section" novalidate>
  <h3>Print servers</h3>
  % include('field.tpl', kind='checkbox', name='autoadd', label='Add new printers', value=settings['autoadd'], description='Give every newly plugged-in printer its own port automatically.')
  % include('field.tpl', kind='text', name='base_port', label='First port', value=settings['base_port'], description='New printers get the next free port from here on.')
  % include('field.tpl', kind='text', name='queue_limit', label='Queue length', value=settings['queue_limit'], description='Computers that may wait while a printer is busy; more are refused until one finishes. 0: refuse while busy.')
  % include('field.tpl', kind='text', name='idle_timeout', label='Idle timeout', value=settings['idle_timeout'], description='Seconds a computer may stay silent in the middle of a job before the job is dropped. 0: never.')
  % include('field.tpl', kind='text', name='drain_grace', label='Status wait', value=settings['drain_grace'], description='Seconds to keep relaying printer status after the last page data before closing.')
  % include('field.tpl', kind='checkbox', name='mdns', label='Announce (mDNS)', value=settings['mdns'], description='Announce the printers on the local network (Bonjour/DNS-SD).')
  % include('field.tpl', kind='select', name='log_level', label='Log level', value=settings['log_level'], options=('debug', 'info', 'warning', 'error'), description='How much the daemon writes to the system log.')
  <div class="cbi-page-actions">
    <button type="submit" class="cbi-button cbi-button-apply">Save &amp; Apply</button>
    <button type="reset" class="cbi-button cbi-button-reset">Reset</button>
  </div>
</form>
<div class="cbi-section">
  <h3>Web page</h3>
  <div class="cbi-value"><span class="cbi-value-title">Address</span><div class="cbi-value-field"><code>{{settings['web_listen'] or '*'}}:{{settings['web_port']}}</code></div></div>
  <div class="cbi-value"><span class="cbi-value-title">Login</span><div class="cbi-value-field"><code>{{settings['auth']}}</code>
    <div class="cbi-value-description">Change these in <code>/etc/config/usbprintd</code>, then reload the service.</div></div></div>
  <div class="cbi-value"><span class="cbi-value-title">Firmware folder</span><div class="cbi-value-field"><code>{{settings['firmware_dir']}}</code></div></div>
</div>
