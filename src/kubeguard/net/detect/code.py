"""Code injection: PHP, server-side includes, template expressions and web-shell writes in a value.

`code_injection(value)` returns ``(family, evidence)`` or None. Each family starts from an entry
token (`ENTRIES`: ``<?php``, a dangerous PHP call name, ``<!--#``, ``{{``, ``${``, ``<%``, a
redirection into a ``.php`` file, ...) and then reads the code that follows with a small lexer:

* ``php``: an open tag followed by code, a call of a function that runs commands or code
  (``system(``, ``eval(``, ``passthru(``, ``base64_decode(`` ...) whose first argument is code-shaped
  (a string literal, a variable, a call, backticks) rather than prose, ``phpinfo()``, complex
  variable syntax ``${@print(...)}`` / ``{${...}}``, superglobals ``$_GET[...]``, a whole value that sets a
  php.ini directive (``auto_prepend_file=...``, ``opcache.jit=...``), a session file's path (``/sess_...``),
  a call of one of PHP's own functions (`php_names`), PHP-only variables (``$GLOBALS``), PHP's stream
  wrappers (``php://``, ``data://``), reflection and file classes made (``new ReflectionFunction(``);
* ``runtime``: a process started from Python or Java code (``subprocess.call(``, ``java.lang.ProcessBuilder``,
  ``Class.forName('...')``, ``Runtime.getRuntime(``) outside a template's delimiters;
* ``node``: Node.js (``require('child_process')``, ``process.mainModule``, ``this.constructor``) and Ruby's
  command runners (``IO.popen(``, ``Process.spawn(``);
* ``ssi``: ``<!--#exec cmd=...-->`` and the other server-side include directives, ESI tags;
* ``template``: the inside of ``{{ }}``, ``{% %}``, ``${ }``, ``#{ }``, ``*{ }``, ``<%= %>``,
  ``{$ }`` scored by its tokens: arithmetic on literals (``{{7*7}}``, the probe every scanner sends),
  dunder attributes (``''.__class__``), objects that reach the server (``config``, ``self``,
  ``request.application``, ``T(java.lang.Runtime)``, ``getClass()``, ``process.mainModule``) and calls
  of anything that runs commands; a plain ``{{ user.name }}`` or ``${price}`` is not code injection;
* ``webshell``: ``echo``/``printf``/``curl -o``... into a server-script file (``> x.php``).

The HTTP detector runs this only on values `patterns.GATE_CODE` marks; that gate is built from
`ENTRIES`, so a value without an entry token can never be flagged (the prefilter relies on it).
"""

from __future__ import annotations

import re
from functools import lru_cache

from kubeguard.net.detect.php_names import PHP_FUNCTIONS, PHP_SHARED_NAMES

# PHP functions that run commands or code, or read and write files an attacker wants.
PHP_EXEC = (
    "system|exec|shell_exec|passthru|popen|proc_open|pcntl_exec|eval|assert|create_function|call_user_func"
    "|call_user_func_array|preg_replace|base64_decode|gzinflate|gzuncompress|str_rot13|file_get_contents"
    "|file_put_contents|fopen|fwrite|fputs|readfile|include|include_once|require|require_once|highlight_file"
    "|show_source|unserialize|move_uploaded_file|phpinfo|phpversion|php_uname|posix_getpwuid|posix_getpwnam"
    "|posix_kill|putenv|ini_set|chr|print|md5|var_dump|print_r|getcwd|get_current_user|array_map|usort"
    "|array_filter|expect_popen|dl|symlink|mail|hexdec|sleep|usleep|die"
)
# Names only PHP code uses: a call of one is code whatever its argument (`fopen (x)`, `curl_init()`).
PHP_ONLY = (
    "shell_exec|passthru|proc_open|popen|pcntl_exec|base64_decode|gzinflate|gzuncompress|gzdecode|bzdecompress"
    "|zlib_decode|str_rot13|file_get_contents|file_put_contents|fsockopen|pfsockopen|curl_init|curl_exec"
    "|assert_options|file_exists|fopen|fwrite|fputs|readfile|highlight_file|show_source|phpinfo|phpversion|php_uname"
    "|posix_\\w+|ini_set|ini_get|get_defined_vars|get_defined_functions|create_function|call_user_func_array"
    "|call_user_func|preg_replace|unserialize|move_uploaded_file|var_dump|print_r|getcwd|get_current_user"
    "|array_map|array_filter|expect_popen|gethostbyname|filegroup|fileowner|strrev|proc_\\w+|pcntl_\\w+"
)
# Prefixes of PHP extension functions (`pg_query`, `odbc_exec`, `stream_socket_client`, ...).
PHP_EXT = "odbc|pg|zend|mysqli|ftp|stream|socket|ldap|openssl|array|ob|apache|sodium|mb|iconv|xmlrpc|dba|sqlite"
# php.ini directives an attacker sets to run code or widen what PHP may do (through a `.user.ini`, a
# `PHP_VALUE` FastCGI parameter or ini_set): a whole value that assigns one is a configuration injection.
# Dotted directives of the extensions that change execution count by their prefix.
PHP_INI = (
    "auto_prepend_file|auto_append_file|allow_url_include|allow_url_fopen|disable_functions|disable_classes"
    "|open_basedir|include_path|extension|extension_dir|zend_extension|engine|short_open_tag|safe_mode"
    "|register_globals|error_log|log_errors|display_errors|html_errors|sendmail_path|sendmail_from|smtp|smtp_port"
    "|doc_root|user_dir|upload_tmp_dir|file_uploads|upload_max_filesize|post_max_size|memory_limit"
    "|max_execution_time|max_input_time|max_input_vars|precision|serialize_precision|unserialize_callback_func"
    "|unserialize_max_depth|user_ini\\.filename|user_ini\\.cache_ttl|cgi\\.force_redirect|cgi\\.fix_pathinfo"
    "|expose_php|enable_dl|variables_order|request_order|default_charset|output_handler|output_buffering"
    "|implicit_flush|realpath_cache_size|pcre\\.(?:backtrack_limit|recursion_limit|jit)|assert\\.\\w+"
    "|(?:opcache|mbstring|session|phar|xdebug|apc|apcu|zend|mysqli|pdo_mysql|sqlite3|curl|openssl|mail"
    "|date|iconv|intl|ffi|zlib|soap|filter|highlight|browscap)\\.\\w+"
)
# A PHP script's file name (`.php`, `.php5`, `.phtml`, `.phar`, `.phps`, `.pht`, `.phpt`; dots after it, which
# Windows drops, allowed): uploaded, it is code the server may run (CRS 933110). `php_script_name` says whether an
# upload's name (a multipart filename, an X-Filename header) is one.
PHP_SCRIPT_NAME = re.compile(r"\.ph(?:p\d*|tml|ar|ps|t|pt)\.*\s*$", re.I)
# A PHP script's name with dots after its extension anywhere in a value (`shell.php....`, `x.php5.`, not the full stop
# after "see config.php."): the name Windows saves as the script, a trick past an extension check.
_DOTTED_SCRIPT = re.compile(r"\.ph(?:p\d*|tml|ar|ps|t|pt)\.{2,}\s*$|^\S*\.ph(?:p\d*|tml|ar|ps|t|pt)\.+$", re.I)
# A PHP session file named by its path (`/var/lib/php/sessions/sess_...`): including one runs what a form
# stored in the session (LFI to code execution).
_SESSION_FILE = re.compile(r"[/\\]sess_[A-Za-z0-9,-]{20,}\b")
# Calls that are attacks even when empty: `phpinfo()`.
_EMPTY_OK = frozenset({"phpinfo", "phpversion", "php_uname", "getcwd", "get_current_user", "die"})
# Calls that run code or commands, written empty as a statement of their own (`eval();`): a probe of the filter.
_EMPTY_STATEMENT = frozenset({"eval", "system", "exec", "shell_exec", "passthru", "assert", "popen", "proc_open",
                              "pcntl_exec", "create_function", "call_user_func", "unserialize"})
# Calls that need more than one code-shaped argument to count (they are also ordinary words).
_WEAK_CALLS = frozenset({"print", "md5", "chr", "hexdec", "sleep", "usleep", "die", "mail", "include", "require",
                         "assert", "exec", "eval", "system", "dl", "symlink", "fopen", "usort", "array_map",
                         "array_filter", "var_dump", "print_r"})

ENTRIES = {
    "php_tag": r"<\?(?:php\b|=|\s)|\[[/\\]?php\]|<\?=?$|<\?xml\s+[^a-z\s]",
    # a PHP statement closed by PHP's closing tag (`phpinfo()?>`, `@eval($_GET[_]);?>`, `exit;?>`): the end of code
    # injected into a file PHP includes (a log, a cache, a template); an XML declaration ends `"?>`, not `)?>` or `;?>`
    "php_close": r"[);]\s*\?>",
    # ThinkPHP's own classes named by their namespace in a route and a method of theirs called from it
    # (`?s=/index/\think\app/invokefunction`, `\think\Request/input`, `\think\view\driver\php/display`): the
    # framework's route RCE, whatever the function and arguments the other parameters pass
    "php_route": r"(?:^|[/=])\s*\\*think\\+[A-Za-z_][\w\\]*/[A-Za-z_]\w*",
    "php_ini": rf"^\s*(?:{PHP_INI})\s*=",
    "php_session": r"[/\\]sess_[A-Za-z0-9,-]{20}",
    "php_call": rf"\b(?:{PHP_EXEC})\s*(?:\(|/\*|#|//)",
    "php_only": rf"\b(?:{PHP_ONLY})\s*(?:\(|/\*|#|//)",
    "php_object": r"\b[OC]:\d+:\"[\w\\]+\":\d+:\{",
    "php_wrapper": r"\b(?:php|phar|zlib|compress\.(?:zlib|bzip2)|ssh2\.(?:exec|shell|tunnel|sftp|scp)|expect|ogg"
                   r"|rar|zip|glob|data|bzip2)://|\bdata:\s*(?:text/(?:plain|html|x-php)|application/(?:x-httpd-php|x-php|php)"
                   r"|\*/\*)\s*[;,]",
    "php_dynamic": r"\$\w*\s*[\[{][^\n]*[\]}]\s*\(",
    "node": r"_\$\$ND_FUNC\$\$_|\bnew\s+Function\s*\(|\bprocess\s*(?:\.|\[\s*['\"]?)\s*mainModule"
            r"|\brequire\s*\.\s*main\b|\brequire\s*\[|\bchild_process\b|\bmodule\s*\.\s*exports\s*="
            r"|\bmainModule\s*\.\s*require\b"
            r"|\beval\s*\(\s*String\s*\.\s*fromCharCode\b|\$[0-9a-f]{1,4}:\w*:?(?:constructor|prototype|__proto__)\b"
            r"|\bprocess\s*(?:\.\s*(?:env|binding|dlopen|kill)\b|\[\s*['\"]?\s*(?:env|binding|mainModule)|\[\s*\w+\.)"
            r"|\bconsole\s*(?:\.\s*\w+|\[\s*['\"]\w+['\"]\s*\])\s*(?:\.\s*(?:call|apply)\s*)?\("
            # CRS 934100's Node.js indicators: the constructor chain, Node's function serialisation, file and process
            # calls on `process`, `require`'s own members
            r"|\bthis\s*\.\s*constructor\b|\bconstructor\s*:\s*constructor\b|\bModule\s*:\s*prototype\b|__js_function\b"
            r"|\bString\s*\.\s*fromCharCode\s*\(|\bfunction\s*\(\s*\)\s*\{"
            r"|\bprocess\s*\.\s*(?:exec|execFile|spawn|fork|\w*(?:read|write|append)\w*|unlink|open|rm|chmod|chown)\w*"
            r"\s*\(|\brequire\s*\.\s*(?:resolve\s*\(|main\b|cache\b|extensions\b)"
            # Ruby: Kernel's and Process's command runners, Open3, %x{}
            r"|\b(?:Process\s*\.\s*spawn|Kernel\s*\.\s*(?:exec|system|spawn|eval|open)|IO\s*\.\s*popen"
            r"|Open3\s*\.\s*(?:popen\w*|capture\w*|pipeline\w*))\s*\(|%x\{[^}]{1,200}\}"
            # a loop on a constant that never ends (Node.js runs one thread: a denial of service): booleans, numbers,
            # strings, objects and the global constructors
            r"|\bwhile\s*\(+\s*[!+-]*\s*(?:true|false|[1-9]\d{0,9}|0|NaN|this|null|undefined|\"[^\"\n]{0,40}\"|'[^'\n]{0,40}'"
            r"|`[^`\n]{0,40}`|\{\}|\[\]|new\s+\w+|\+?Infinity|window|String|Boolean|Function|Object|Array)"
            r"\s*\)+",
    "php_complex": r"\$\{\s*@|\{\s*\$\{|\$\s+\{|\$\{\s*['\"]",
    # a variable called as a function: `$a(1)`, `$$b(2)`, `$f /*x*/ (3)`, `$o->$m()`
    "php_varcall": r"\$+[A-Za-z_]\w*(?:[([]|\s*(?:/\*|#|//|->\s*\$|\r|\n|\())",
    # a name in quotes or parentheses called: `"system"(ls)`, `(system)(id)`, `"\x73ystem"(ls)`
    "php_quoted_call": r"[\"'(](?:\\x[0-9a-f]{2}|\w){2,40}[\"')]\(",
    # CRS 933210's call shapes: a name glued from a bracketed and a quoted part (`(sys)"tem"(ls)`), an
    # indexed callable (`{0}("ls")`); PHP's reflection and file classes made (`new ReflectionFunction(`);
    # include / require of a file without parentheses (`require_once 'x.php';`)
    "php_split_call": r"\([\w\"'.-]{1,40}\)[\"'][\w-]{1,40}[\"']\(|(?:^|[;\s])\{\d+\}\s*\(\s*[\"'$]"
                      r"|\bnew\s+(?:Reflection(?:Function|Method|Class)|SplFileObject|SplFileInfo|DirectoryIterator"
                      r"|RecursiveDirectoryIterator|GlobIterator|FilesystemIterator|ZipArchive|PharData|Phar|SoapClient"
                      r"|SimpleXMLElement|DOMDocument|ReflectionObject)\s*\("
                      r"|\b(?:include|require)(?:_once)?\s+[\"'][^\"'\n]{1,200}\.(?:php\d?|phtml|inc|txt|log)[\"']\s*;",
    # a comment or a vertical tab / form feed between a name and its call: `exec/**/(x)`, `pi\v()`
    # (the gate: a comment's end, or a line break / tab before `()`; `_GAP_CALL` reads the name before it)
    "php_gap_call": r"\*/\s*\(|(?:#|//)[^\n]*\n\s*\(|\w[\t\x0b\x0c\r\n]\s*\(\s*\)",
    # a call of a function of a PHP extension: `odbc_connect(`, `pg_query (`, `zend_version(`
    "php_ext_call": rf"\b(?:{PHP_EXT})_\w+\s*\(",
    "php_xml_tag": r"<\?xml\s*:",
    "php_dotted_name": _DOTTED_SCRIPT.pattern,
    # a name of CRS 933160's list (PHP calls that prose rarely writes) called glued to one word or variable:
    # `substr(x)`, `mkdir($d)`, `printf(foo)` (not `printf(3)`, a manual section; not `file(s)`)
    "php_glued": r"\b(?:ord|rtrim|substr|strip_tags|glob|mkdir|prev|printf|tmpfile|unlink|unpack|intval|is_a"
                 r"|image(?:gif|jpeg|png|wbmp|xbm)|opendir|filegroup|readfile|popen|fputs|usort)\(\$?[A-Za-z_]\w*\)",
    "php_superglobal": r"\$_(?:GET|POST|REQUEST|COOKIE|SERVER|FILES|ENV|SESSION)\b"
                       r"|\$(?:GLOBALS|HTTP_(?:COOKIE|ENV|GET|POST|SERVER|REQUEST)_VARS|HTTP_POST_FILES|HTTP_RAW_POST_DATA"
                       r"|http_response_header|php_errormsg)\b",
    "ssi": r"<!--\s*#\s*(?:exec|include|echo|config|printenv|set|fsize|flastmod|if|elif)\b|<esi:[a-z]",
    "perl": r"@+\s*\{\s*\[",
    "template": r"\{\{|\{%|\$\{|#\{|\*\{|!\{|%\{|<%|\{\$|\{/?php\}|@\{|@\(|[<\[]#assign\b|#set\s*\(\s*\$|\[%"
                r"|[$#]\\[A-Za-z]\{",
    # the tags and macros of server page languages that run code or commands: ColdFusion's (`<cfexecute`,
    # `<cfscript>`), ASP.NET's and JSP's directives (`<%@ Register ... %>`, `<%@ page import=... %>`) and JSP's
    # standard actions (`<jsp:include page=...>`, `<jsp:scriptlet>`), HFS's macros
    # (`{.exec|ipconfig.}`), DedeCMS's tags told to run PHP (`{dede:field runphp='yes'}`, `{dede:php}`)
    "server_tag": r"<cf(?:execute|script|object|invoke|file|registry|include|module)\b"
                  r"|<%@\s*(?:page|register|import|assembly|control|master|reference|implements|outputcache|webhandler"
                  r"|webservice|application|taglib|include|tag)\b"
                  r"|<jsp:(?:include|forward|useBean|setProperty|getProperty|scriptlet|expression|declaration|plugin"
                  r"|directive\.\w+)\b"
                  r"|\{\.\s*(?:exec|load|save|append|delete|mkdir|run)\s*\||\brunphp\s*=\s*['\"]?(?:yes|true|1)\b|\{dede:php\b",
    # OGNL reached by breaking out of a quoted string (Confluence's `\u0027+{233*233}+\u0027`), and OGNL's context
    # variables read or called (`#request.get(`, `#parameters.x,`, `#_memberAccess[`, `#context['xwork...']`)
    "ognl": r"(?:\\u00(?:27|22)|['\"])\s*\+\s*\{\s*\d+\s*[-+*/]\s*\d+\s*\}"
            r"|#(?:request|parameters|context|_memberAccess|attr|application|session|_root)\s*(?:\.\s*\w+\s*[(,)\[]"
            r"|\[\s*['\"\\#]|\\u005b)",
    "python": r"[.\[]\s*['\"]?__(?:class|mro|subclasses|globals|builtins|init|import|dict|bases?)__\b|__import__\s*\(",
    # a process started from Python or Java code an eval / expression language runs (`subprocess.call(['id'])`,
    # `java.lang.ProcessBuilder`, `Class.forName('java.lang.Runtime')`, `Runtime.getRuntime()`)
    "runtime": r"\bsubprocess\s*\.\s*(?:call|run|Popen|check_output|check_call|getoutput|getstatusoutput)\s*\("
               r"|\bjava\s*\.\s*lang\s*\.\s*(?:Runtime|ProcessBuilder)\b|\bClass\s*\.\s*forName\s*\(\s*['\"]"
               r"|\bRuntime\s*\.\s*getRuntime\s*\(|\bT\s*\(\s*(?:java|javax|jdk|sun|com|org|groovy)\s*\.\s*\w+\s*\.|\bgetClass\s*\(\s*\)\s*\.\s*forName\s*\("
               # Go's os/exec (`exec.Command("id")`); Spring's context loaded from a URL, the gadget of CVE-2017-17485
               # and its kin (`FileSystemXmlApplicationContext('http://...')`)
               r"|\bexec\s*\.\s*Command(?:Context)?\s*\(|\b(?:FileSystem|ClassPath)XmlApplicationContext\s*\("
               # Groovy's String.execute(), which runs the string as a command (`'id'.execute().text`: Jenkins' script
               # console, OFBiz's programExport); Lua's and Python's os.execute / os.system / os.popen on a literal (an
               # APISIX filter_func); a Java class made by its full name, as a script engine or EL is told to
               # (`new java.util.Scanner(`, `new org.springframework.expression.spel.standard.SpelExpressionParser()`)
               r"|['\"][^'\"\n]{1,200}['\"]\s*\.\s*execute\s*\(\s*\)|\.\s*execute\s*\(\s*\)\s*\.\s*(?:text|waitFor)\b"
               r"|\bos\s*\.\s*(?:execute|system|popen|exec[lv]p?e?|spawn[lv]p?e?)\s*\(\s*['\"\[]"
               r"|\bnew\s+(?:java|javax|jdk|sun|com\.sun|org\.springframework|org\.apache|groovy|bsh)\.(?:[a-z]\w*\.)*[A-Z]\w*\s*\("
               # ASP and ASP.NET: eval / Execute of a request value (`<%eval request("ant")%>`, AntSword's shells),
               # JScript.NET's eval with its "unsafe" argument, the COM objects that run commands or touch files,
               # .NET's process and file classes
               r"|\b(?:eval|execute|executeglobal)\s*\(?\s*request\s*(?:\.\s*(?:item|form|querystring|cookies)\s*)?[(\[]"
               r"|\beval\s*\([^\n]{0,2000}?,\s*[\"']unsafe[\"']\s*\)"
               r"|\bCreateObject\s*\(\s*[\"'](?:WScript\.Shell|Scripting\.FileSystemObject|Shell\.Application|ADODB\.Stream"
               r"|WScript\.Network)[\"']"
               r"|\bSystem\s*\.\s*(?:Diagnostics\s*\.\s*Process|IO\s*\.\s*(?:File|Directory|StreamWriter)\w*)\s*[.(]",
    # the probes SSTI scanners (tplmap, SSTImap, TInjA) send to tell one engine from another, each of which only that
    # engine reads: Velocity's #evaluate, FreeMarker's comment, Smarty's comment between tags and its {math}, Dust's
    # helpers and comment, and literal arithmetic a language evaluates and prints (`typeof(89)+78`, `(89*78).to_s`,
    # `print(89+78)`, `echo PHP_OS;`); OGNL's static member access (`@java.lang.Integer@valueOf`)
    "probe": r"#evaluate\s*\(|<#--[^>\n]{0,80}-->|\}\s*\{\*[^*{}]{0,40}\*\}|\{\*[^*{}]{0,40}\*\}\s*\{"
             r"|\{math\s+equation\s*=|\{@(?:if|eq|ne|select|math|sep|gt|lt|contextDump)\b|\w\{![^!{}\s]{1,40}!\}"
             r"|\btypeof\s*\(\s*\d+\s*\)\s*\+\s*\d|\(\s*\d+\s*[-+*/]\s*\d+\s*\)\s*\.\s*to_s\b"
             r"|\b(?:echo|print)\s+PHP_[A-Z_]+\s*;|\b(?:print|str|puts|echo)\s*\(\s*\d+\s*[-+*/]\s*\d+\s*\)"
             r"|@java\.lang\.\w+@\w+"
             # a product of two long literals printed (ZAP's and w3af's check: `print 28763*4196403;`,
             # `Response.Write(28763*4196403)`): only an evaluator prints the product back
             r"|\b(?:print(?:f|ln)?|echo|puts|throw|die|Response\.Write|out\.print(?:ln)?)\s*\(?\s*\d{3,}\s*\*\s*\d{3,}",
    "webshell": r">>?\s*['\"]?[\w./\\~-]*\.(?:php\d?|phtml|phar|jspx?|aspx?|ashx|asmx|cgi)\b"
                r"|\s-[oO]\s*['\"]?[\w./\\~-]*\.(?:php\d?|phtml|phar|jspx?|aspx?|ashx|cgi)\b",
}
# a call of one of PHP's own functions (`php_names`: `htmlspecialchars(`, `gzdecode /*x*/ (`): the gate marks a
# snake_case name or one of the other names called (a list of two thousand names takes hyperscan seconds to compile)
ENTRIES["php_named"] = (r"\b[a-z]\w*_\w+\s*(?:\(|/\*|#|//)|\b(?:"
                        + "|".join(sorted(n for n in PHP_FUNCTIONS if "_" not in n)) + r")\s*(?:\(|/\*|#|//)")
# a name PHP shares with libc or other languages called bare with a PHP variable or a single-quoted path or PHP
# file as its first argument (`mkdir($d)`, `opendir('/etc')`); a PHP statement that prints a command's output
# (the entry, a superset for hyperscan, reads the argument only: a list of 185 short names made the gate scan
# 12 times slower; `_ENTRY` holds the precise form, no method call: `os.mkdir('/x')`, `$o->mkdir($d)`)
_SHARED_CALL = (r"(?:" + "|".join(sorted(PHP_SHARED_NAMES)) + r")\s*\(\s*(?:\$[A-Za-z_]|'(?:/|\.\.?/"
                r"|[^'\n]{0,200}\.php\d?')|[^()\n]{0,80}?,\s*\$[A-Za-z_])|\b(?:echo|print)\s+`[^`\n]{1,200}`\s*;")
ENTRIES["php_shared"] = r"[(,]\s*(?:\$[a-z_]|'(?:/|\.\.?/|[^'\n]*\.php))|\b(?:echo|print)\s+`"
# PHP written without letters (a web shell past a filter): strings XORed together, assigned or chained
# (`$_="`{{{"^"?<>/"`, `("%28"^"[").("%33"^"[")`),
# variables named with underscores only assigned, appended to or incremented (`$__++`, `$___.=$__`, `$_=$$____`)
ENTRIES["php_noalpha"] = (r"\$\w*\s*=\s*[\"'][^\"'\n]{1,12}[\"']\s*\^\s*[\"']"
                          r"|[\"']\s*\)\s*\.\s*\(\s*[\"'][^\"'\n]{1,12}[\"']\s*\^\s*[\"']"
                          r"|\$_{2,}\s*(?:\+\+|\.=|=\s*[$\[(@\"'])|\$_\s*=\s*(?:\[\]|@?\"\$_|\$\$_)")
# a function's name glued from quoted pieces (`'sys' . 'tem'`) or an array of one name indexed to call it
# (`[system][0](ls)`, `define('z', [['sys'.'tem']]); (z)[0][0]('id')`): `_assembled_name` spells it out
ENTRIES["php_assembled"] = (r"[\"'][A-Za-z_]{1,30}[\"']\s*\.\s*[\"'][A-Za-z_]{1,30}[\"']"
                            r"|\[\s*[\"']?[A-Za-z_]{2,30}[\"']?\s*\]\s*\[\s*\d+\s*\]")
ENTRY_PATTERN = "|".join(f"(?:{p})" for p in ENTRIES.values())
_ENTRY = {name: re.compile(p, re.I) for name, p in ENTRIES.items()}
# The precise forms behind two of the entries (the entries stay small for hyperscan).
_ENTRY["php_only"] = re.compile(
    rf"\b(?:{PHP_ONLY})\s*(?:/\*.{{0,80}}?\*/\s*|#[^\n]{{0,80}}\n\s*|//[^\n]{{0,80}}\n\s*){{0,4}}\(", re.I | re.S)
# a name then a call, comments allowed between; the php_named entries' names are looked up in PHP_FUNCTIONS
_NAMED_CALL = re.compile(r"\b([a-z_]\w*)\s*(?:/\*.{0,80}?\*/\s*|#[^\n]{0,80}\n\s*|//[^\n]{0,80}\n\s*){0,4}\(",
                         re.I | re.S)
_ENTRY["php_named"] = _NAMED_CALL
_ENTRY["php_shared"] = re.compile(r"(?<![\w.>:$\\])" + _SHARED_CALL, re.I)
_ENTRY["php_dynamic"] = re.compile(r"\$\w*(?:\s*\[(?:[^\[\]]|\[[^\[\]]{0,20}\]){0,40}\]|\s*\{[^}]{0,40}\})+\s*\(")

_PHP_CALL = re.compile(
    rf"\b({PHP_EXEC})\s*(?:/\*.{{0,80}}?\*/\s*|#[^\n]{{0,80}}\n\s*|//[^\n]{{0,80}}\n\s*){{0,4}}\(\s*(?:/\*.{{0,80}}?\*/\s*){{0,4}}(.?)",
    re.I | re.S
)
_CALL_NAME = re.compile(r"[a-z_]\w*\s*\(", re.I)
# a whole value that is one directive assignment (`engine=true`, `opcache.jit=50`), not prose that names one
_PHP_INI = re.compile(
    rf"\s*(?:{PHP_INI})\s*=\s*(?:\"[^\"\n]{{0,200}}\"|'[^'\n]{{0,200}}'|[\w./\\:-]{{1,200}})\s*$", re.I)
_TEMPLATE = re.compile(
    r"\{\{(.{0,400}?)\}\}|\{%(.{0,400}?)%\}|[$#*!%](?:\\[A-Za-z])?\{(.{0,400}?)\}|<%=?(.{0,400}?)%>|\{\$(.{0,200}?)\}"
    r"|@\((.{0,200}?)\)|@\{\[(.{0,200}?)\]\}|@\{(.{0,200}?)\}",
    re.S,
)
# The delimiters of the template languages: several kinds of them within a few characters is the polyglot probe
# scanners send to make any engine fail (`${{<%[%'"}}%\.`), not text.
_DELIMITER = re.compile(r"\$\{|\{\{|<%|\[%|#\{|\}\}|%>|%\]")
# Tokens that make a template expression code injection.
_ARITH = re.compile(r"^\s*['\"]?\d+['\"]?\s*[-+*/%]\s*['\"]?\d+['\"]?\s*$|\d+\s*\*\s*['\"]?\d+")
_DUNDER = re.compile(r"__\s*\w+\s*__|\.\s*__\w+")
_SERVER_OBJECT = re.compile(
    r"^\s*(?:config|self|_self|settings|lipsum|cycler|joiner|namespace|url_for|get_flashed_messages|app"
    # JSP / JSF expression language's implicit objects
    r"|applicationScope|sessionScope|requestScope|pageContext|facesContext|initParam"
    r"|application|request\.(?:application|environ|__)|smarty|\$smarty|_context|this|global|process)\b"
    r"|\bT\s*\(\s*(?:java|javax|jdk|sun|com|org|groovy)\.|\bjava\.(?:lang|io|nio|net)\.|\bgetClass\s*\(|\bforName\s*\(|\bgetRuntime\s*\(|\.exec\s*\("
    r"|\bProcessBuilder\b|classLoader\b|\bgetResource\s*\(|\bfreemarker\.template|\?new\s*\(|\bnew\s+java\."
    r"|\bprocess\.(?:mainModule|binding|env)|\bchild_process\b|\brequire\s*\(|\bconstructor\s*\.\s*constructor"
    r"|\bconstructor\s*\(|\bos\.(?:popen|system)|\bsubprocess\b|\b__import__|\bimport\s+os\b|\bpopen\s*\("
    r"|\b(?:system|exec|eval|passthru|shell_exec|spawn|execSync|IO\.popen|Kernel|File\.(?:open|read)|Dir\."
    r"|open|readlines|getattr|attr)\s*\(|`[^`]+`|\|\s*(?:filter|map|sort|reduce)\s*\(\s*['\"]"
    r"|\bregisterUndefinedFilterCallback\b|\bgetFilter\s*\(|\bsetAttribute\s*\(|\bgetMethod\s*\(|\binvoke\s*\("
    r"|\bphp\b|\bSmarty_Internal|\bdump\s*\(|\bdebug\b|\bsource\s*\(|\b(?:include|template_from_string)\s*\(\s*['\"]|\bmodule\.(?:require|constructor)"
    r"|\bnew\s+(?:[A-Z]\w*|[a-z]+\.[\w.]+)\s*\(|\bgetAttribute\s*\(|\.\s*execute\s*\(|\bnewInstance\s*\("
    r"|\bMethodClosure\b|^\s*(?:request|session)\s*$|\b(?:request|session)\s*\.\s*\w+\s*\("
    r"|['\"][^'\"]{0,40}['\"]\s*\.\s*\w+\s*\(|^\s*=?\s*_\.(?:VERSION|templateSettings)\b"
    r"|\b\w+\s*\(\s*['\"](?:/|[a-z]:\\)|\b_context\b|\bpassthru\b|\b(?:SECRET_KEY|secret_key|signer|password)\b"
    r"|\bconfig\s*\.\s*(?:items|iteritems|values|get|from_\w+|__\w+)\b|passthru|\b_charset\b|\d+\s*\|\s*add\s*:\s*\d+"
    r"|\bnew\s*(?:/\*.{0,20}?\*/\s*)+\w+\s*\("
    r"|^\s*(?:exec|sym|data|call|fd|section)://|^\s*#with\s+[\"'(\w]|\bstring\.sub\b"
    r"|\.\s*(?:mro|subclasses|globals|builtins|init)\b|\bimport\b|\bincludes?\s+['\"]?/"
    # FreeMarker's number-to-letter built-ins: a string spelled from numbers (`${(6?lower_abc+...)}`)
    r"|\d\s*\?\s*(?:lower|upper)_abc\b"
    # Ruby's platform constants and command substitution, a library loaded (`#{RUBY_PLATFORM}`, `<%= %x(id) %>`)
    r"|\bRUBY_(?:PLATFORM|VERSION|ENGINE|PATCHLEVEL)\b|%x\(|\brequire\s*['\"]\w"
    # Python's scope introspection called (`{{globals()}}`), a class's constant read through Twig (`{{constant(
    # 'Twig_Environment::VERSION')}}`), Django's request environment (`{{request.META}}`)
    r"|\b(?:locals|globals|vars)\s*\(\s*\)|\bconstant\s*\(\s*['\"][\w\\]+::\w+|\brequest\s*\.\s*(?-i:META)\b",
    re.I,
)
# A method called on an object (`name.method(`), which a `{{ }}` expression engine runs as it is written.
_MEMBER_CALL = re.compile(r"[A-Za-z_$][\w$]*(?:\s*\.\s*[A-Za-z_$][\w$]*)+\s*\(")
_WEBSHELL_CMD = re.compile(r"\b(?:echo|printf|print|cat|tee|curl|wget|cp|mv|base64|fputs|fwrite)\b", re.I)


def _code_arg(first: str, rest: str) -> bool:
    """The start of a call's first argument is code, not prose: a literal, a variable, a call, backticks."""
    if first in ("'", '"', "$", "`", "@", "[") or (first == "\\" and rest[:1] in ("'", '"')):
        return True  # a literal, a variable, an array; a quote escaped once more (`system(\\'id\\')`)
    return bool(first) and _CALL_NAME.match(first + rest) is not None


_COMMENT = r"(?:/\*[^*]{0,80}\*/|#[^\n]{0,80}\n|//[^\n]{0,80}\n)"
# `$f(`, `$$f(`, `$o->$m(`, `$a[1]['b'] /*x*/ (`, `$f\n (`: a variable's value called as a function.
_VARCALL = re.compile(
    rf"\$+([A-Za-z_]\w*)((?:\s*{_COMMENT}|\s*\[[^\[\]\n]{{0,40}}\]|\s*\{{[^{{}}\n]{{0,40}}\}}|\s*->\s*\$?\w+"
    rf"|[ \t]*[\r\n][ \t]*)+\s*)?\(", re.S)
# a variable called with spacing between it and its arguments: a tab or two spaces, or a code argument after one
_VARCALL_SPACED = re.compile(r"\$+[A-Za-z_]\w*(\t[ \t]*|  +| )\(\s*([$'\"`])?")
_QUOTED_CALL = re.compile(r"([\"'(])((?:\\x[0-9a-f]{2}|\w){2,40})([\"')])\(", re.I)
_GAP_CALL = re.compile(rf"\b([a-z_]\w*)(\s*{_COMMENT})+\s*\(|\b[a-z_]\w*[\t\x0b\x0c\r\n]\s*\(\s*\)", re.I)
_EXT_CALL = re.compile(rf"\b(?:{PHP_EXT})_\w+(\s*)\((\s*(?:$|[\"'$)]))?", re.I)
_DANGEROUS = re.compile(rf"(?:{PHP_EXEC}|{PHP_ONLY}|touch|chroot|chmod|chown|unlink|rename|copy|mkdir|rmdir)$", re.I)


_CONCAT = re.compile(r"[\"']([A-Za-z_]{1,30})[\"'](?:\s*\.\s*[\"']([A-Za-z_]{1,30})[\"'])+")
_PIECE = re.compile(r"[\"']([A-Za-z_]{1,30})[\"']")
_INDEXED = re.compile(r"\[\s*[\"']?([A-Za-z_]{2,30})[\"']?\s*\]\s*\[\s*\d+\s*\]")


def _assembled_name(text: str) -> str | None:
    """A dangerous function's name spelled from concatenated quoted pieces, or named in an indexed array."""
    for concat in _CONCAT.finditer(text):
        if _DANGEROUS.match("".join(_PIECE.findall(concat.group(0)))):
            return text[max(0, concat.start() - 20) : concat.end() + 40]
    for indexed in _INDEXED.finditer(text):
        if _DANGEROUS.match(indexed.group(1)) and "(" in text[indexed.end() : indexed.end() + 40]:
            return text[max(0, indexed.start() - 20) : indexed.end() + 40]
    return None


def _php_shapes(text: str) -> str | None:
    """Call shapes only PHP writes: variable functions, quoted or parenthesised names called, comments
    between a name and its call, extension functions, ``$ {...}`` and ``${'...'}`` variables."""
    for call in _VARCALL.finditer(text):
        name = call.group(1)
        if call.group(2) or not (name.isupper() and name.isalpha() and len(name) <= 6):  # `$TSLA(`: a cashtag
            return text[call.start() : call.end() + 40]
    for call in _VARCALL_SPACED.finditer(text):
        if call.group(1) != " " or call.group(2):  # `$f\t(1)`, `$f ('id')`; not "$a (dollar a)"
            return text[call.start() : call.end() + 40]
    for call in _QUOTED_CALL.finditer(text):
        opened, name, closed = call.groups()
        if (opened == closed or (opened, closed) == ("(", ")")) and (
                "\\x" in name.lower() or _DANGEROUS.match(name)):
            return text[call.start() : call.end() + 40]
    for call in _GAP_CALL.finditer(text):
        if call.group(1) is None or "/*" in call.group(2) or _DANGEROUS.match(call.group(1)):
            return text[call.start() : call.end() + 40]
    for call in _EXT_CALL.finditer(text):
        if not call.group(1) or call.group(2) is not None:  # `pg_query(`, `array_diff (` + end; not `stream_x (2).mp4`
            return text[call.start() : call.end() + 40]
    complex_var = re.search(r"\$\s+\{[^{}\n]{1,60}\}|\$\{\s*['\"][^{}\n]{0,60}\}", text)
    if complex_var:
        return complex_var.group(0)
    xml = re.search(r"<\?xml\s*:\s*\w+", text, re.I)
    if xml:
        return text[xml.start() : xml.start() + 80]
    return None


def _php(text: str) -> str | None:
    tag = _ENTRY["php_tag"].search(text)
    if tag and tag.group(0).lower() in ("<?=", "<? ") and "?>" in text[tag.end() :]:
        return text[tag.start() : tag.start() + 80]
    if tag and tag.group(0).strip() in ("<?", "<?=") and not text[tag.end() :].strip():
        return text[tag.start() :]  # a value that ends by opening PHP code: the start of an injection
    if tag and tag.group(0).lower().startswith("<?xml"):
        return text[tag.start() : tag.start() + 80]  # `<?xml 1`: no declaration; PHP's short tag with `xml` after it
    if tag and tag.group(0).lower() == "<?php":
        return text[tag.start() : tag.start() + 80]
    if tag and re.search(r"[;()$'\"`]", text[tag.end() : tag.end() + 200]):
        return text[tag.start() : tag.start() + 80]
    if tag and tag.group(0).lower() in ("[php]", "[/php]", "[\\php]"):
        return text[tag.start() : tag.start() + 80]
    if tag and re.match(r"\s*(?:echo|print|system|eval|include|require|exec|passthru|\$)", text[tag.end() :], re.I):
        return text[tag.start() : tag.start() + 80]
    route = _ENTRY["php_route"].search(text)
    if route:
        return text[max(0, route.start() - 20) : route.end() + 40]
    close = _ENTRY["php_close"].search(text) and re.search(r"\w\([^()\n]{0,200}\)\s*\?>|;\s*\?>", text)
    if close:
        return text[max(0, close.start() - 60) : close.end() + 20]
    dotted = _DOTTED_SCRIPT.search(text)
    if dotted:
        return text[max(0, dotted.start() - 40) : dotted.end()]
    ini = _PHP_INI.match(text)
    if ini:
        return ini.group(0)[:80]
    session = _SESSION_FILE.search(text)
    if session:
        return text[max(0, session.start() - 40) : session.end()]
    split_call = _ENTRY["php_split_call"].search(text)
    if split_call:
        return text[max(0, split_call.start() - 20) : split_call.end() + 40]
    noalpha = _ENTRY["php_noalpha"].search(text)
    if noalpha:
        return text[max(0, noalpha.start() - 20) : noalpha.end() + 40]
    if _ENTRY["php_assembled"].search(text):
        assembled = _assembled_name(text)
        if assembled:
            return assembled
    for name in ("php_only", "php_object", "php_wrapper", "php_dynamic"):
        for found in _ENTRY[name].finditer(text):
            called = found.group(0).split("(")[0].strip().lower()
            if name == "php_only" and re.match(r"\s*\)\s*(?:[^\s;.)]|\s+\w)", text[found.end() :]) \
                    and not called.startswith(("php", "posix_", "get_", "curl_init")):
                continue  # "fwrite() failed", "exec() syscalls": a function named in prose
            return text[found.start() : found.end() + 40]
    for call in _NAMED_CALL.finditer(text):
        if call.group(1).lower() not in PHP_FUNCTIONS:
            continue
        after = text[call.end() :]
        if re.match(r"\s*\)\s*(?:[^\s;.)]|\s+\w)", after):
            continue  # "htmlspecialchars() escapes ...": a function named in prose
        gap = text[call.end(1) : call.end() - 1]
        if gap and not gap.strip() and not re.match(r"\s*(?:$|[\"'$)`])", after):
            continue  # "array_diff (see the manual)": a space, then prose (`gzdecode ('.')`, `gzdecode /**/(` count)
        return text[call.start() : call.end() + 40]
    glued = _ENTRY["php_glued"].search(text)
    if glued:
        return text[max(0, glued.start() - 20) : glued.end() + 40]
    shared = _ENTRY["php_shared"].search(text)
    if shared:
        return text[shared.start() : shared.end() + 40]
    for call in _PHP_CALL.finditer(text):
        name, first = call.group(1).lower(), call.group(2)
        rest = text[call.end() : call.end() + 40]
        if first == ")" and name in _EMPTY_OK:
            return call.group(0)
        if first == ")" and name in _EMPTY_STATEMENT and re.match(r"\s*(?:;|$)", rest) and (
                rest.strip() or not text[: call.start()].strip()):
            return call.group(0)  # `eval();`, a whole value `system()`: a statement, not "avoid eval() here"
        if re.match(r"[\w$]+\)", first + rest) and text[call.start() : call.end()].rstrip(first).endswith(
                call.group(1) + "("):
            return text[call.start() : call.end() + 40]  # `system(whoami)`, `chr(123)`: no space before the paren
        gap = text[call.start() + len(call.group(1)) : call.end() - 1 - len(first)]
        if re.search(r"[\t\x0b\x0c\r\n]|  ", gap.split("(")[0]):
            return text[call.start() : call.end() + 40]  # `exec\t(x)`, `exec  (x)`: spacing prose never has
        if not _code_arg(first, rest):
            continue
        if name in ("require", "include") and re.match(r"""(['"])[\w@-]+\1\s*\)""", first + rest):
            continue  # `require('express')`: a Node module name, not a file PHP would include
        escaped = first == "\\" and rest[:1] in ("'", '"')
        if name in _WEAK_CALLS and not (first in ("'", '"', "$", "`") or escaped or _CALL_NAME.match(first + rest)):
            continue
        before = text[max(0, call.start() - 2) : call.start()]
        if name in _WEAK_CALLS and first not in ("$", "`") and before[-1:].isalpha():
            continue
        return text[call.start() : call.end() + 40]
    complex_var = _ENTRY["php_complex"].search(text)
    if complex_var and _CALL_NAME.search(text, complex_var.end(), complex_var.end() + 200):
        return text[complex_var.start() : complex_var.start() + 80]
    for glob in _ENTRY["php_superglobal"].finditer(text):
        # `$_GET[...]`, `$_COOKIE;`, a whole value; or a variable only PHP has (`$GLOBALS`, `$HTTP_RAW_POST_DATA`),
        # not "the $_SERVER array" in prose
        if not glob.group(0).startswith("$_") or re.match(r"\s*(?:[\[;),.]|->|$)", text[glob.end() :]):
            return text[glob.start() : glob.start() + 60]
    return _php_shapes(text)


def _template(text: str) -> str | None:
    delimiters = list(_DELIMITER.finditer(text))
    for k in range(len(delimiters) - 3):
        run = delimiters[k : k + 4]
        if run[-1].end() - run[0].start() <= 24 and len({d.group(0) for d in run}) >= 3:
            return text[run[0].start() : run[-1].end() + 8]
    for match in _TEMPLATE.finditer(text):
        inner = next((g for g in match.groups() if g is not None), "")
        if not inner.strip():
            continue
        if match.group(0).startswith("${") and re.match(r"\s*(?:jndi|lower|upper|env|sys|date|::-|:-)", inner, re.I):
            continue  # a Log4j lookup: its own rule
        if _ARITH.search(inner) or _DUNDER.search(inner) or _SERVER_OBJECT.search(inner):
            return match.group(0)[:120]
        if match.group(0).startswith(("{php", "{/php")):
            return match.group(0)[:120]
        if match.group(0).startswith("<%") and re.search(r"\b(?:eval|execute(?:global)?)\s+[A-Za-z_\"(]", inner, re.I):
            return match.group(0)[:120]  # VBScript's eval / Execute of a value in ASP's <% %> (`eval str`)
        if match.group(0).startswith("{{") and _MEMBER_CALL.search(inner):
            return match.group(0)[:120]  # `{{ someString.toUpperCase() }}`: the engine calls what it is told to
    if re.search(r"\{/?php\}", text, re.I):
        return text[:80]
    letters = re.search(r"[$#]\{\s*\(?\s*\d+\s*\?\s*(?:lower|upper)_abc\b", text)
    if letters:
        return text[letters.start() : letters.start() + 120]  # FreeMarker spelling a name from numbers, however long
    preprocessed = re.search(r"__\s*[$*#@]\{[^{}]{1,200}\}\s*__", text)
    if preprocessed:
        return preprocessed.group(0)[:120]  # Thymeleaf's preprocessing `__${...}__`: an expression built from input
    constant_if = re.search(r"(?:\{%|<%)-?\s*(?:if|elif|unless)\s+(?:true|false|1|0|none|nil|null"
                            r"|\d+\s*(?:==|!=|<=|>=|<|>)\s*\d+)\s*-?(?:%\}|%>)", text, re.I)
    if constant_if:
        return constant_if.group(0)  # `{% if True %}49{% endif %}`: a probe, no template tests a constant
    macro = re.search(r"\{\{\s*(groovy|python|jython|ruby|php|velocity|script)\b[^{}\n]{0,80}\}\}.{0,2000}?"
                      r"\{\{\s*/\s*\1\s*\}\}", text, re.I | re.S)
    if macro:
        return macro.group(0)[:120]  # XWiki's script macros, opened and closed: `{{groovy}}...{{/groovy}}` runs
    engine_math = re.search(r"\{\{-?\s*\d+\s*\|\s*(?:times|plus|minus|divided_by|modulo)\s*:\s*\d+"
                            r"|\{\{-?\s*print(?:f|ln)?\s+[\"`]"
                            r"|#set\s*\(\s*\$\w+\s*=\s*[^)]{0,80}?\d\s*[-+*/%]\s*\d", text)
    if engine_math:
        return engine_math.group(0)[:120]  # Liquid's and Velocity's arithmetic, Go's print(f): a probe
    statement = re.search(r"\{%-?\s*(?:include|import|from|extends|debug|load|get_admin_log|ssi|widthratio)\b", text,
                          re.I)
    if statement:
        return statement.group(0)[:120]
    velocity = re.search(r"#set\s*\(\s*\$\w+\s*=\s*\$\w+\s*\.\s*\w+\s*\(", text)
    if velocity:
        return text[velocity.start() : velocity.start() + 120]
    assign = re.search(r"[<\[]#assign\b[^>\]]{0,200}(?:freemarker\.template\.utility|\?new\s*\(|classLoader"
                       r"|=\s*(?:Runtime|ProcessBuilder|Execute|ObjectConstructor|JythonRuntime|ClassLoader)\b"
                       r"|protectionDomain|loadClass\s*\(|getField\s*\(|\?api\b)", text, re.I)
    if assign:
        return assign.group(0)[:120]
    return None


def _webshell(text: str) -> str | None:
    target = _ENTRY["webshell"].search(text)
    if target and _WEBSHELL_CMD.search(text, 0, target.start()):
        return text[max(0, target.start() - 60) : target.end()]
    return None


@lru_cache(maxsize=4096)
def code_injection(value: str) -> tuple[str, str] | None:
    """``(family, evidence)`` for code a PHP / SSI / template engine would run from `value`, else None."""
    text = value[:16384]
    ssi = _ENTRY["ssi"].search(text)
    if ssi:
        return "ssi", text[ssi.start() : ssi.start() + 80]
    if _ENTRY["webshell"].search(text):
        shell = _webshell(text)
        if shell:
            return "webshell", shell
    if _ENTRY["template"].search(text):
        template = _template(text)
        if template:
            return "template", template
    tag = _ENTRY["server_tag"].search(text) or _ENTRY["ognl"].search(text)
    if tag:
        return "template", text[max(0, tag.start() - 30) : tag.end() + 60]
    perl = _ENTRY["perl"].search(text)
    if perl:  # Perl's `@{[ ... ]}` interpolation opener: nothing else writes it (CRS 934140)
        return "perl", text[perl.start() : perl.start() + 80]
    python = _ENTRY["python"].search(text)
    if python:
        return "template", text[max(0, python.start() - 30) : python.end() + 30]
    runtime = _ENTRY["runtime"].search(text)
    if runtime:
        return "runtime", text[max(0, runtime.start() - 30) : runtime.end() + 40]
    probe = _ENTRY["probe"].search(text)
    if probe:
        return "template", text[max(0, probe.start() - 30) : probe.end() + 40]
    node = _ENTRY["node"].search(text)
    if node:
        return "node", text[node.start() : node.end() + 40]
    if any(_ENTRY[name].search(text) for name in ENTRIES if name.startswith("php")):
        php = _php(text)
        if php:
            return "php", php
    return None
