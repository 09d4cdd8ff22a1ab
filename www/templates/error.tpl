% rebase('layout.tpl', page='error')
<h2 name="content">{{title}}</h2>
<div class="cbi-section"><p>{{message}}</p><p><a href="/">Back to the status page</a></p></div>
