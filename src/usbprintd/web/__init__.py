"""The LuCI-styled web page: status, printer settings, firmware and the JSON API behind them.

Imported only when the web page is enabled (web_port > 0): bottle and its imports cost RAM.
"""
