<div class="cbi-value" id="row-{{name}}">
  <label class="cbi-value-title" for="field-{{name}}">{{label}}</label>
  <div class="cbi-value-field">
  % if kind == 'checkbox':
    <input type="checkbox" class="cbi-input-checkbox" id="field-{{name}}" name="{{name}}"{{!' checked' if value else ''}}>
  % elif kind == 'select':
    <select class="cbi-input-select" id="field-{{name}}" name="{{name}}">
    % for option in options:
      <option value="{{option}}"{{!' selected' if option == value else ''}}>{{option}}</option>
    % end
    </select>
  % else:
    <input type="{{kind}}" class="cbi-input-text" id="field-{{name}}" name="{{name}}" value="{{value}}"{{!' list="%s"' % datalist if get('datalist') else ''}}{{!' placeholder="%s"' % placeholder if get('placeholder') else ''}}>
  % end
    <div class="cbi-value-error" data-error-for="{{name}}" hidden></div>
  % if description:
    <div class="cbi-value-description">{{description}}</div>
  % end
  </div>
</div>
